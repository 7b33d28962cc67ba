"""Every call setting, declared once: its type, default, range, help and where it applies.

The ``%%step`` flag, the ``StepMagics`` trait, the Python API's keyword, the ``step-magic ask``
option and the checks of each value are all made from this table (``magics.traits``,
``magics.stepflags``, ``cli_ask``, ``core.settings``), so a setting added here reaches every
surface and is checked the same everywhere. ``Settings`` and ``api.keywords.CallKeywords``
stay written out for type checkers; ``tests/test_catalog.py`` fails when they disagree.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from step_magic.core.errors import InputError
from step_magic.core.models import DEFAULT_MODEL, EFFORTS

APIS = ("chat", "messages", "responses")  # wire.apis: the registry's names
DETAILS = ("low", "high")


@dataclass(frozen=True)
class Range:
    """Where a number may lie; ``low_open`` excludes ``low`` itself (a timeout above 0)."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def describe(self, kind: type = float) -> str:
        """``must be between 0 and 2``; ``must be a positive whole number`` for a count."""
        if self.high == math.inf and (self.low, self.low_open) in ((0, True), (1, False)):
            return "must be a positive " + ("whole number" if kind is int else "number")
        low = f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        if self.high == math.inf:
            return f"must be {low}"
        if not self.low_open:
            return f"must be between {self.low:g} and {self.high:g}"
        return f"must be {low} and at most {self.high:g}"


@dataclass(frozen=True)
class Setting:
    """One call setting. ``flag``: its ``%%step`` spelling (None: none; for a boolean, the
    switch that turns it on, or off when ``default`` is True); ``shell``: ``step-magic ask``
    takes it too; ``request``: it is a field of ``Settings`` (the others shape the prompt)."""

    name: str
    kind: type
    default: Any
    help: str
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    short: str | None = None
    shell: bool = False
    request: bool = True
    flag_help: str | None = None  # what the flag does, when that is not ``help`` (a switch)
    unset: str | None = None  # what None, the default, means: "no deadline"

    @property
    def nullable(self) -> bool:
        return self.default is None

    @property
    def described(self) -> str:
        """``help`` for Python (a trait, a keyword), where None can be given, with what None
        means when that needs saying: ``…; None: no deadline.``"""
        return self._help_with(f"; None: {self.unset}")

    def _help_with(self, unset: str) -> str:
        return f"{self.help.removesuffix('.')}{unset}." if self.unset else self.help

    @property
    def dest(self) -> str:
        """The name argparse gives the flag's value (``no_reasoning`` for ``--no-reasoning``)."""
        return (self.flag or f"--{self.name}").lstrip("-").replace("-", "_")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit (``must be between 0 and 2``), or None."""
        if value is None:
            return None if self.nullable else "must be set"
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be True or False"
        if self.kind in (int, float):
            if not self.typed(value):  # 100.0 tokens would be sent as 100.0: refused
                return f"must be a {'whole number' if self.kind is int else 'number'}"
            fits = self.range is None or self.range.holds(value)
            return None if fits or self.range is None else self.range.describe(self.kind)
        if not isinstance(value, str):
            return "must be text"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return None

    def typed(self, value: Any) -> bool:
        """Whether ``value`` has this setting's type (any number for a float setting)."""
        if isinstance(value, bool):
            return self.kind is bool
        if self.kind is int:
            return isinstance(value, int)
        if self.kind is float:
            return isinstance(value, int | float)
        return isinstance(value, self.kind)

    def parse(self, text: str) -> Any:
        """A flag's text as this setting's value; ``argparse.ArgumentTypeError`` (one line,
        which argparse prefixes with the flag) when it is not one."""
        try:
            value = self.kind(text) if self.kind in (int, float) else text
        except ValueError:
            kind = "whole number" if self.kind is int else "number"
            raise argparse.ArgumentTypeError(f"must be a {kind}, not {text!r}") from None
        problem = self.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, not {text}")
        return value

    def argument(self, **override: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The names and options of this setting's flag, for ``add_argument`` (the shell)
        or IPython's ``@argument`` (the magic); ``override`` replaces any of the options."""
        if self.flag is None:
            raise ValueError(f"{self.name} has no flag")
        names = (self.short, self.flag) if self.short else (self.flag,)
        # A flag cannot be given None: its help says what leaving it out means instead.
        shown = self.flag_help or self._help_with(f" (default: {self.unset})")
        options: dict[str, Any] = {"help": shown}
        if self.kind is bool:
            options["action"] = "store_true"
        elif self.choices is not None:
            options["choices"] = list(self.choices)
        elif self.kind is not str:
            options["type"] = self.parse
        return names, {**options, **override}


SECONDS = Range(0, low_open=True)
POSITIVE = Range(1)
SETTINGS: tuple[Setting, ...] = (
    Setting("model", str, DEFAULT_MODEL, "Model name.", flag="--model", short="-m", shell=True),
    Setting(
        "effort",
        str,
        None,
        "Reasoning effort: low, medium or high.",
        choices=EFFORTS,
        unset="the model's own",
        flag="--effort",
        short="-e",
        shell=True,
    ),
    Setting("system", str, None, "System prompt.", flag="--system", shell=True),
    Setting(
        "max_tokens",
        int,
        None,
        "Cap on the reply's tokens.",
        POSITIVE,
        flag="--max-tokens",
        shell=True,
    ),
    Setting(
        "temperature",
        float,
        None,
        "Sampling temperature, 0 to 2.",
        Range(0, 2),
        flag="--temperature",
        shell=True,
    ),
    Setting(
        "top_p",
        float,
        None,
        "Nucleus sampling: keep the likeliest tokens up to this "
        "probability mass, above 0 and at most 1.",
        Range(0, 1, low_open=True),
        flag="--top-p",
        shell=True,
    ),
    Setting(
        "api",
        str,
        "chat",
        "chat: Chat Completions; messages: the Messages API; responses: the Responses API.",
        choices=APIS,
        flag="--api",
        shell=True,
    ),
    Setting(
        "timeout",
        float,
        120.0,
        "Seconds without any data before a call fails.",
        SECONDS,
        flag="--timeout",
        shell=True,
    ),
    Setting(
        "deadline",
        float,
        None,
        "Seconds for a whole call, even while data keeps arriving.",
        SECONDS,
        unset="no deadline",
        flag="--deadline",
        shell=True,
    ),
    Setting("max_retries", int, 3, "Retries for 429/5xx before any text arrived.", Range(0)),
    Setting(
        "show_reasoning",
        bool,
        False,
        "Open the reasoning panel by default.",
        flag="--show-reasoning",
        flag_help="Open the reasoning panel.",
    ),
    Setting(
        "reasoning",
        bool,
        True,
        "Show the reasoning at all.",
        flag="--no-reasoning",
        shell=True,
        flag_help="Do not display the reasoning.",
    ),
    Setting(
        "remote_images",
        bool,
        False,
        "Load images the answer links to from other hosts (off: "
        "they are links, so a saved notebook fetches nothing when opened).",
        flag="--remote-images",
    ),
    Setting(
        "budget",
        int,
        6_000,
        "Token budget of each attached object.",
        POSITIVE,
        flag="--budget",
        request=False,
    ),
    Setting(
        "detail",
        str,
        "low",
        "Detail level sent with images.",
        choices=DETAILS,
        flag="--detail",
        request=False,
    ),
    Setting(
        "image_max_side",
        int,
        2048,
        "Images are downscaled to this long side.",
        Range(16),
        request=False,
    ),
    Setting(
        "max_steps",
        int,
        8,
        "--tools: model turns allowed before the loop stops.",
        POSITIVE,
        flag="--max-steps",
        request=False,
    ),
)
BY_NAME: Mapping[str, Setting] = MappingProxyType({item.name: item for item in SETTINGS})
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"base_url": None, **{item.name: item.default for item in SETTINGS}}
)


def check_values(values: Mapping[str, Any], *, owner: str = "StepMagics.") -> None:
    """Raise InputError for a value that does not fit, naming it as the user set it
    (``StepMagics.timeout`` for a trait, ``timeout`` for a keyword of the Python API)."""
    for name, value in values.items():
        setting = BY_NAME.get(name)
        if setting is not None:
            _check(setting, value, f"{owner}{name} =")


def check_flags(flags: Mapping[str, Any]) -> None:
    """The same for flag values that did not come through ``Setting.parse`` (a caller
    building the flags itself), named as flags: ``--api 'x' is not valid…``."""
    for setting in SETTINGS:
        value = flags.get(setting.name)
        if setting.flag is not None and setting.kind is not bool and value is not None:
            _check(setting, value, setting.flag)


def _check(setting: Setting, value: Any, named: str) -> None:
    problem = setting.problem(value)
    if problem is not None:
        wrong = (
            "out of range" if setting.range is not None and setting.typed(value) else "not valid"
        )
        raise InputError(f"{named} {value!r} is {wrong}: it {problem}")

"""The catalogue of settings is the only place a setting is declared.

The ``%%step`` flag, the ``StepMagics`` trait, the Python API's keyword, the ``Settings`` field
and the ``step-magic ask`` option of each setting are made from ``core.catalog`` or checked
against it here: a setting added in one place and not the others fails these tests, as does
a default, a help text, a type or a range that differs between two of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import typing
from typing import Any

import pytest

import step_magic
from step_magic import cli, cli_ask
from step_magic.api.keywords import CALL_ONLY, CallKeywords
from step_magic.core.catalog import BY_NAME, DEFAULTS, SETTINGS, Setting
from step_magic.core.errors import InputError
from step_magic.core.settings import Settings, check_defaults
from step_magic.magics.step import StepMagics
from step_magic.server import LocalServer

# What is deliberately not a call setting, with why.
MAGIC_ONLY = {  # how the magic behaves between calls, not what one call sends or shows
    "base_url", "warm_up", "explain_errors", "memory", "replay", "replay_speed", "cassette",
    "history", "background_limit", "history_path", "debug",
}  # fmt: skip
SETTINGS_ONLY = {"base_url", "api_key", "local"}  # resolved from the environment
SHELL_ONLY = {"prompt", "base_url", "attach", "local", "help", "chat", "resume", "tools", "schema"}

FLAGGED = [item for item in SETTINGS if item.flag is not None]


def step_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = StepMagics.step.parser
    return parser


def ask_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    cli_ask.add_arguments(parser)
    return parser


def options_by_dest(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}


# --- every surface has every setting, with the catalogue's default and help ----------------------


def test_every_configurable_trait_is_a_catalogued_setting_or_magic_only() -> None:
    traits = StepMagics.class_traits(config=True)
    assert set(traits) - MAGIC_ONLY == set(BY_NAME)
    for setting in SETTINGS:
        trait = traits[setting.name]
        assert trait.default_value == setting.default, setting.name
        assert trait.help == setting.described, setting.name
        assert trait.allow_none == setting.nullable, setting.name


def test_every_keyword_is_a_catalogued_setting_of_the_same_type_or_call_only() -> None:
    hints = typing.get_type_hints(CallKeywords)
    assert set(hints) - set(CALL_ONLY) == set(BY_NAME)
    for setting in SETTINGS:
        assert setting.kind in typing.get_args(hints[setting.name]), setting.name


def test_every_settings_field_is_a_catalogued_request_setting_with_its_default() -> None:
    fields = {item.name: item for item in dataclasses.fields(Settings)}
    assert set(fields) - SETTINGS_ONLY == {s.name for s in SETTINGS if s.request}
    for setting in SETTINGS:
        default = fields[setting.name].default if setting.request else None
        if default is not dataclasses.MISSING and setting.request:  # model: always given
            assert default == setting.default, setting.name
    assert set(DEFAULTS) == set(BY_NAME) | {"base_url"}


def test_every_flagged_setting_is_a_step_flag_that_defaults_to_the_trait() -> None:
    actions = options_by_dest(step_parser())
    for setting in FLAGGED:
        action = actions[setting.dest]
        assert setting.flag in action.option_strings, setting.name
        assert action.default in (None, False), setting.name  # the trait is the default
    flagged_traits = {a.dest for a in actions.values()} & set(StepMagics.class_traits(config=True))
    assert flagged_traits - MAGIC_ONLY <= {s.dest for s in FLAGGED}


def test_the_shell_takes_exactly_the_catalogued_shell_settings() -> None:
    actions = options_by_dest(ask_parser())
    shell = {s.dest for s in SETTINGS if s.shell}
    assert set(actions) - SHELL_ONLY == shell


def test_a_flag_s_help_says_what_leaving_it_out_means_never_none() -> None:
    """The shell and ``%%step`` have no None to give: their help says what leaving a flag out
    means (``--deadline``: no deadline). A trait or keyword is set from Python, where None can
    be given, so the trait's help says what None means."""
    step_help = " ".join((StepMagics.step.__doc__ or "").split())  # what %%step? prints
    ask_help = " ".join(ask_parser().format_help().split())
    deadline = "Seconds for a whole call, even while data keeps arriving"
    for shown in (step_help, ask_help):
        assert "None" not in shown
        assert f"{deadline} (default: no deadline)." in shown
    assert "Reasoning effort: low, medium or high (default: the model's own)." in ask_help
    traits = StepMagics.class_traits(config=True)
    assert traits["deadline"].help == f"{deadline}; None: no deadline."
    assert traits["effort"].help == "Reasoning effort: low, medium or high; None: the model's own."


# --- one range, checked alike on every surface ---------------------------------------------

SAMPLES = [-1, 0, 0.5, 1, 2, 3, 15, 16, 1e9]


def accepted_by_flag(parser: argparse.ArgumentParser, setting: Setting, value: float) -> bool:
    action = options_by_dest(parser)[setting.dest]
    try:
        assert action.type is not None
        action.type(str(value))
    except argparse.ArgumentTypeError:
        return False
    return True


def accepted_as_default(setting: Setting, value: float) -> bool:
    try:
        check_defaults({setting.name: value})
    except InputError:
        return False
    return True


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.range is not None], ids=lambda s: s.name
)
def test_a_number_is_refused_alike_as_flag_trait_keyword_and_shell_option(
    setting: Setting,
) -> None:
    for raw in SAMPLES:
        value: float = int(raw) if setting.kind is int and float(raw).is_integer() else raw
        if setting.kind is int and not float(raw).is_integer():
            continue
        expected = setting.problem(value) is None
        assert accepted_as_default(setting, value) == expected, (setting.name, value)
        if setting.flag is not None:
            assert accepted_by_flag(step_parser(), setting, value) == expected
        if setting.shell:
            assert accepted_by_flag(ask_parser(), setting, value) == expected


# --- top_p: the first setting added through the catalogue reaches every surface -------------


def sent(server: LocalServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith(("/completions", "/messages"))]


def test_top_p_is_sent_from_the_magic_flag_and_trait(ip: Any, api_env: LocalServer) -> None:
    ip.run_cell("%%step --top-p 0.5 --no-memory\nHi", store_history=False).raise_error()
    ip.run_line_magic("config", "StepMagics.top_p = 0.25")
    try:
        ip.run_cell("%%step --api messages --no-memory\nHi", store_history=False).raise_error()
    finally:
        ip.run_line_magic("config", "StepMagics.top_p = None")
    assert [body.get("top_p") for body in sent(api_env)] == [0.5, 0.25]


def test_top_p_is_sent_from_ask_map_rows_and_the_shell(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    step_magic.ask("Hi", top_p=0.5, display=False)
    step_magic.map_rows(["a", "b"], "{item}", top_p=0.75, display=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["ask", "--top-p", "0.9", "--no-reasoning", "Hi"]) == 0
    assert sorted(body.get("top_p") for body in sent(api_env)) == [0.5, 0.75, 0.75, 0.9]


def test_a_top_p_out_of_range_is_one_line_everywhere(ip: Any, api_env: LocalServer) -> None:
    result = ip.run_cell("%%step --top-p 0\nHi", store_history=False)
    assert str(result.error_in_exec) == "argument --top-p: must be above 0 and at most 1, not 0"
    with pytest.raises(InputError, match=r"^top_p = 1.5 is out of range: it must be above 0"):
        step_magic.ask("Hi", top_p=1.5)
    assert sent(api_env) == []


def test_top_p_is_part_of_the_request_key_so_a_replay_never_mixes_them_up() -> None:
    from step_magic.core.request import ChatRequest

    plain = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
    assert dataclasses.replace(plain, top_p=0.5).cache_key() != plain.cache_key()


def test_the_api_setting_offers_exactly_the_registry_s_wire_apis() -> None:
    from step_magic.wire.apis import API

    assert BY_NAME["api"].choices == tuple(API)
    assert options_by_dest(step_parser())["api"].choices == list(API)
    assert options_by_dest(ask_parser())["api"].choices == list(API)

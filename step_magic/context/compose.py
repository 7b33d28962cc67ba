"""The user message of a call: the prompt with ``{name}`` references filled in, plus attachments.

Plain Python over a namespace mapping, so it is testable without a shell; every refusal is a
one-line ValueError that the magic shows as a UsageError before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from step_magic.context.attachments import Attachment, collect, render_value
from step_magic.context.interpolate import interpolate
from step_magic.core.errors import InputError
from step_magic.core.models import model_info
from step_magic.core.request import CHARS_PER_TOKEN


@dataclass(frozen=True)
class ComposeOptions:
    """How to build the prompt: the ``--with`` names and the limits that bound them."""

    names: tuple[str, ...] = ()
    interpolate: bool = True
    strict: bool = False
    budget_tokens: int = 6_000
    detail: str = "low"
    image_max_side: int = 2048


@dataclass(frozen=True)
class Composed:
    """The prompt text as it will be sent, and the attachments in order."""

    text: str
    attachments: tuple[Attachment, ...] = ()

    def parts(self) -> list[dict[str, Any]]:
        """All attachment content parts, in order."""
        return [part for attachment in self.attachments for part in attachment.parts]

    @property
    def labels(self) -> tuple[str, ...]:
        """Short descriptions for the footer, e.g. ``df (120,000 rows, summarised)``."""
        return tuple(attachment.label for attachment in self.attachments)


def compose(
    prompt: str,
    namespace: Mapping[str, object],
    model: str,
    options: ComposeOptions,
    *,
    cwd: Path | None = None,
    secrets: Sequence[str] = (),
) -> Composed:
    """Fill in references, collect attachments, and refuse inputs the model cannot read."""
    budget_chars = options.budget_tokens * CHARS_PER_TOKEN
    text = prompt
    if options.interpolate:
        render = partial(render_value, budget_chars=budget_chars)
        text = interpolate(prompt, namespace, render=render, strict=options.strict).text
    attachments = collect(
        options.names,
        namespace,
        budget_chars=budget_chars * max(len(options.names), 1),
        image_max_side=options.image_max_side,
        detail=options.detail,
        cwd=cwd,
        secrets=secrets,
    )
    check_inputs(model, attachments)
    return Composed(text, tuple(attachments))


def check_inputs(model: str, attachments: Sequence[Attachment]) -> None:
    """Images and video only go to models that read them (unknown models: the server decides)."""
    info = model_info(model)
    if info is None:
        return
    kinds = {attachment.kind for attachment in attachments}
    if "image" in kinds and not info.images:
        raise InputError(f"{model} reads text only; use -m step-3.7-flash to send images")
    if "video" in kinds and not info.video:
        raise InputError(f"{model} does not take video; use -m step-3.7-flash to send video")

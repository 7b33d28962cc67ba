"""A call made ready before anything is sent: keywords checked, prompt composed, request built.

``prepare_call`` is the one way a call is made ready, whoever asks: ``ask``, ``stream``,
``compare``, ``Chat`` and background calls (through ``prepare``, which reads the API's
keywords) and the ``%%step`` magic, its ``--background`` and its comparisons (which read flags,
traits and the notebook's namespace). So bad input fails the same way everywhere, at no cost,
and a request is built the same way from the same inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from step_magic.api.inputs import attachments, call_settings, tool_loop
from step_magic.context.compose import ComposeOptions, compose
from step_magic.core.catalog import DEFAULTS
from step_magic.core.errors import InputError
from step_magic.core.models import model_info
from step_magic.core.outputschema import OutputSchema
from step_magic.core.request import ChatRequest, estimate_tokens
from step_magic.core.settings import Settings
from step_magic.engine.session import CallOptions, Prepared, Session
from step_magic.engine.toolloop import ToolLoop
from step_magic.memory.history import History


@dataclass(frozen=True)
class Call:
    """A call ready to run: its settings, request, tools and memory choices."""

    settings: Settings
    prepared: Prepared
    options: CallOptions
    tools: ToolLoop | None


def prepare(
    session: Session,
    prompt: str,
    keywords: Mapping[str, Any],
    *,
    memory: bool,
    chat: str = "default",
    new: bool = False,
) -> Call:
    """Check every keyword and build the request; nothing is sent, so bad input costs nothing."""
    given = dict(keywords)
    attach, tools = given.pop("attach", None), given.pop("tools", None)
    base_url, api_key = given.pop("base_url", None), given.pop("api_key", None)
    cassette, replay = given.pop("cassette", None), bool(given.pop("replay", False))
    schema = output_schema(given.pop("schema", None))
    settings = call_settings(given, base_url=base_url, api_key=api_key)
    names, namespace = attachments(attach)
    budget = given.get("budget") or DEFAULTS["budget"]
    compose_options = ComposeOptions(
        names=names,
        budget_tokens=budget,
        detail=given.get("detail") or DEFAULTS["detail"],
        image_max_side=given.get("image_max_side") or DEFAULTS["image_max_side"],
    )
    loop = tool_loop(
        tools, budget=budget, max_steps=given.get("max_steps") or DEFAULTS["max_steps"]
    )
    options = CallOptions(
        chat=chat,
        new=new,
        memory=memory,
        replay=replay,
        cassette=Path(cassette).expanduser() if cassette else None,
    )
    return prepare_call(
        session, settings, prompt, compose_options, namespace, options, tools=loop, schema=schema
    )


def prepare_call(
    session: Session,
    settings: Settings,
    prompt: str,
    sources: ComposeOptions,
    namespace: Mapping[str, object],
    options: CallOptions,
    *,
    tools: ToolLoop | None = None,
    cell: str | None = None,
    schema: OutputSchema | None = None,
) -> Call:
    """Compose the prompt from ``namespace`` as ``sources`` says, describe the tools, add the
    thread's earlier turns: the request a live call, a dry run and a replay all use.

    ``InputError`` for an empty prompt, a reference or an attachment that cannot be used, or
    a prompt that cannot fit the model's context; nothing is sent.
    """
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text (str), not {type(prompt).__name__}")
    if not prompt.strip():  # the magic and the shell refuse it too: it would still be billed
        raise InputError("nothing to ask: the prompt is empty")
    composed = compose(
        prompt, namespace, settings.model, sources, cwd=Path.cwd(), secrets=settings.secrets
    )
    specs = tools.toolbox.specs() if tools else ()
    prepared = session.prepare(settings, composed, options, cell, specs)
    if not options.replay:  # a recorded reply is played back whatever its size
        check_fits(prepared.request)
    if schema is not None:
        prepared = dataclasses.replace(
            prepared, request=dataclasses.replace(prepared.request, schema=schema)
        )
    return Call(settings, prepared, options, tools)


def check_fits(request: ChatRequest) -> None:
    """InputError when the prompt alone is over the model's context (prompt and reply
    share it): sending it would only cost a round trip and a 400."""
    info = model_info(request.model)
    tokens = estimate_tokens(request.messages)
    if info is not None and tokens > info.context_tokens:
        raise InputError(
            f"the prompt is about {tokens:,} tokens, over the {info.context_tokens:,} that "
            f"{request.model} takes (prompt and reply together): shorten it or attach less"
        )


def output_schema(given: object) -> OutputSchema | None:
    """``schema=`` as the request carries it (InputError for what is not a schema)."""
    return None if given is None else OutputSchema.of(given)


def one_off_session(history: bool) -> Session:
    """A session for one call: no memory, the history in its usual place (or none)."""
    return Session(History() if history else None)


def close(session: Session) -> None:
    if session.history is not None:
        session.history.close()

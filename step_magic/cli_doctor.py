"""``step-magic doctor``: what a server actually does, against what step-magic expects.

Every test here runs against imitations of StepFun (no machine in CI reaches it), so the one
way to learn that the real API still speaks as ``protocol.md`` says is to ask it. A few tiny
calls (a streamed reply per documented effort, the Messages API, one tool call, an image for
a model that takes images, a bad model name), a table of expected against observed, and the
cost of the run. Verdicts: ``ok`` (as documented), ``differs`` (step-magic copes, but not as
StepFun documents it; the note says what the user loses), ``FAIL`` (step-magic cannot work
with this). The exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from step_magic.cli_local import local_simulator
from step_magic.core.errors import InputError
from step_magic.core.models import DEFAULT_MODEL, estimate_cost, model_info
from step_magic.core.redact import redact_url
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings, redact
from step_magic.core.text import dollars
from step_magic.wire.apis import API, WireAPI, observe
from step_magic.wire.chat import chat_body
from step_magic.wire.probe import Observed

PROMPT = "Reply with the single word: ready."
OBSERVED_WIDTH = 90
# A 2×2 red PNG: the smallest image a vision model can be asked about.
RED_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a73"
        "0000001649444154789c63f8cfc0c0f09f8181e13f030300001dfa02fe6ea8d4f9"
        "0000000049454e44ae426082"
    )
).decode()
TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Finding:
    """One row of the report."""

    check: str
    expected: str
    observed: str
    verdict: str  # "ok", "differs" or "FAIL"
    cost: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="the server to examine (default: $STEPFUN_BASE_URL)")
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, help="the model to examine")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    parser.add_argument(
        "--api-url",
        action="append",
        default=[],
        metavar="API=URL",
        help="where one wire API is mounted when not under --base-url, e.g. "
        "messages=https://host/anthropic/v1 (repeatable)",
    )
    parser.add_argument(
        "--local", action="store_true", help="examine the bundled offline simulator"
    )


def _api_urls(pairs: list[str]) -> dict[str, str]:
    """``--api-url messages=URL`` pairs, checked: a typo must not silently test the wrong URL."""
    urls = {}
    for pair in pairs:
        name, _, url = pair.partition("=")
        if name not in API or name == "chat" or not url:
            others = ", ".join(n for n in API if n != "chat")
            raise InputError(f"--api-url {pair}: expected API=URL with API one of {others}")
        urls[name] = url
    return urls


def run_doctor(args: argparse.Namespace) -> int:
    """Examine the server, print the report; 1 if anything failed, 2 without a key."""
    if args.local:
        if args.base_url:
            print(f"step-magic doctor: --local examines the simulator; --base-url {args.base_url}"
                  " is not examined")  # fmt: skip
        with local_simulator("doctor", "is examined", file=sys.stdout) as base_url:
            return _run(args, base_url, simulator=True)
    return _run(args, args.base_url, simulator=False)


def _run(args: argparse.Namespace, base_url: str | None, *, simulator: bool) -> int:
    from step_magic.core import settings as config

    base_url = base_url or config.find_base_url()
    try:
        warning = config.check_base_url(base_url)
        urls = _api_urls(args.api_url)
        warnings = [warning, *(config.check_base_url(url) for url in urls.values())]
    except InputError as err:
        print(f"step-magic doctor: {err}")
        return 2
    for said in dict.fromkeys(w for w in warnings if w):  # the key would travel in clear
        print(f"Warning: {said}")
    try:
        key = None if simulator else config.key_for(base_url, "shell")
    except InputError as err:  # no key for a remote server, or a stored one not safe to use
        print(f"step-magic doctor: {err}")
        return 2
    settings = Settings(
        model=args.model, base_url=base_url, api_key=key or config.LOCAL_KEY, local=simulator
    )
    print(f"step-magic doctor: {redact_url(base_url)}, model {args.model}\n")
    findings = list(examine(settings, timeout=args.timeout, api_urls=urls))
    priced = config.is_stepfun_host(urlsplit(base_url).hostname or "")
    print(report(findings, secrets=settings.secrets, priced=priced))
    return 1 if any(f.verdict == "FAIL" for f in findings) else 0


def report(findings: list[Finding], *, secrets: Sequence[str], priced: bool = True) -> str:
    """A plain table, the total cost, and the verdict counts.

    The cost comes from StepFun's price list, so it is shown only for StepFun's hosts
    (``priced``): a simulator or another provider's server has other prices, or none.

    What a server said is redacted (the key, a URL's credentials) before it is cut to
    the column's width: a cut first could leave a piece of an echoed key unrecognised.
    """
    rows = [("check", "expected", "observed", "verdict")] + [
        (f.check, f.expected, _shown(f.observed, secrets), f.verdict) for f in findings
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[3]])
             for row in rows]  # fmt: skip
    counts = {v: sum(f.verdict == v for f in findings) for v in ("ok", "differs", "FAIL")}
    cost = sum(f.cost for f in findings)
    spent = f"this run cost {dollars(cost)}" if priced else "no cost estimated (not StepFun)"
    lines += ["", f"{counts['ok']} ok, {counts['differs']} differ, {counts['FAIL']} failed;"
              f" {spent}"]  # fmt: skip
    return redact("\n".join(lines), *secrets)


def _shown(text: str, secrets: Sequence[str]) -> str:
    clean = redact(text, *secrets)
    return clean if len(clean) <= OBSERVED_WIDTH else clean[: OBSERVED_WIDTH - 1] + "…"


def examine(
    settings: Settings, *, timeout: float, api_urls: Mapping[str, str] | None = None
) -> Iterator[Finding]:
    """Every check, in order; a check that raises becomes a FAIL row, not a crash.

    ``api_urls`` mounts a wire API elsewhere than ``settings.base_url`` (some servers serve
    the Messages API under another prefix): without it, that API's check would be a 404.
    """
    urls = api_urls or {}
    info = model_info(settings.model)
    efforts = (info.efforts if info else ()) or (None,)
    checks: list[tuple[str, Callable[[], Iterator[Finding]]]] = [
        (f"stream, effort {e}", functools.partial(_stream, settings, e, timeout, shape=i == 0))
        for i, e in enumerate(efforts)
    ]
    checks += [
        *(
            (
                entry.title,
                functools.partial(_other_api, _at(settings, urls.get(entry.name)), entry, timeout),
            )
            for entry in API.values()
            if entry.name != "chat"
        ),
        ("tool call", lambda: _tool_call(settings, timeout)),
        ("bad model name", lambda: _bad_model(settings, timeout)),
    ]
    if info is not None and info.images:
        checks.insert(-1, ("image part", lambda: _image(settings, timeout)))
    for name, check in checks:
        try:
            yield from check()
        except Exception as err:  # a timeout, a bad reply: the report goes on
            yield Finding(name, "an answer", f"{type(err).__name__}: {err}", "FAIL")
            if "Connect" in type(err).__name__:  # nobody listens: every other check would
                return  # say the same, so one row says it


def _at(settings: Settings, url: str | None) -> Settings:
    return settings if url is None else dataclasses.replace(settings, base_url=url)


def _chat(settings: Settings, request: ChatRequest, timeout: float) -> Observed:
    body = chat_body(settings, request)
    return observe(API["chat"], settings, body, timeout=timeout)


def _cost(settings: Settings, seen: Observed) -> float:
    usage = seen.usage
    price = estimate_cost(settings.model, usage.prompt, usage.completion) if usage else None
    return price or 0.0


def _user(content: object) -> tuple[dict[str, object], ...]:
    return ({"role": "user", "content": content},)


def _stream(
    settings: Settings, effort: str | None, timeout: float, *, shape: bool
) -> Iterator[Finding]:
    """One streamed reply; with ``shape``, also how its stream was shaped."""
    request = ChatRequest(settings.model, _user(PROMPT), effort=effort, max_tokens=1024)
    seen = _chat(settings, request, timeout)
    name = f"stream, effort {effort or 'default'}"
    if seen.status != 200 or seen.error:
        yield Finding(name, "200 and a streamed reply", _failure(seen), "FAIL")
        return
    texts = f"{seen.reasoning_chars:,} + {seen.answer_chars:,} chars in {seen.seconds:.1f} s"
    verdict = "ok" if seen.answer_chars or seen.finish_reasons[-1:] == ["length"] else "FAIL"
    yield Finding(name, "reasoning, then an answer", texts, verdict, _cost(settings, seen))
    if shape:
        yield from _stream_shape(seen)


def _stream_shape(seen: Observed) -> Iterator[Finding]:
    """How the stream was shaped: the protocol facts step-magic relies on."""
    fields = ", ".join(sorted(seen.reasoning_fields)) or "none"
    reasoning = "ok" if fields == "reasoning" else "differs"
    yield Finding("  reasoning field", "delta.reasoning", fields, reasoning)
    every = seen.usage_chunks >= seen.chunks - 1 and seen.chunks > 1
    if every:
        usage = "on every chunk"
    elif seen.usage_chunks == 1:
        usage = "once, at the end (step-magic asks with stream_options)"
    else:
        usage = (
            f"on {seen.usage_chunks} of {seen.chunks} chunks"
            if seen.usage_chunks
            else ("never: no token counts or cost")
        )
    yield Finding("  usage", "on every chunk", usage, "ok" if every else "differs")
    before, ends = _finish_shape(seen.finish_reasons)
    early = sorted({json.dumps(reason) for reason in before})
    end = json.dumps(ends[0] if ends else None)
    shape = f"{'/'.join(early) or 'nothing'} before the end, then {end}"
    good_end = len(ends) == 1 and ends[0] in ("stop", "length")
    fine = good_end and set(early) <= {"null", '""'}
    yield Finding("  finish_reason", 'null or "" before the end, then stop', shape,
                  "ok" if fine else ("differs" if good_end else "FAIL"))  # fmt: skip
    header = seen.trace_header or "none: bug reports carry the completion id only"
    yield Finding("  trace id", "X-Trace-Id header", header,
                  "ok" if seen.trace_header == "x-trace-id" else "differs")  # fmt: skip


def _finish_shape(reasons: list[object]) -> tuple[list[object], list[object]]:
    """The finish reasons before the first real one, and the real ones.

    A chunk after the end with ``finish_reason: null`` (a usage chunk that repeats the
    choice, as some servers send it; OpenAI's has no choices) is not a second ending, nor a
    missing one.
    """
    ended = [i for i, reason in enumerate(reasons) if reason not in (None, "")]
    if not ended:
        return reasons, []
    return reasons[: ended[0]], [reasons[i] for i in ended]


def _other_api(settings: Settings, entry: WireAPI, timeout: float) -> Iterator[Finding]:
    """A wire API besides Chat Completions (the registry's): does it stream an answer?"""
    request = ChatRequest(settings.model, _user(PROMPT), max_tokens=1024)
    body = {**entry.body(settings, request), "stream": True}
    seen = observe(entry, settings, body, timeout=timeout)
    if seen.status == 404:
        yield Finding(entry.title, "streamed text and thinking", "404: not offered here",
                      "differs")  # fmt: skip
        return
    texts = f"{seen.reasoning_chars:,} + {seen.answer_chars:,} chars, stop {seen.finish_reasons}"
    ok = seen.status == 200 and seen.answer_chars and not seen.error
    observed = texts if ok else _failure(seen)
    yield Finding(entry.title, "streamed text and thinking", observed,
                  "ok" if ok else "FAIL", _cost(settings, seen))  # fmt: skip


def _tool_call(settings: Settings, timeout: float) -> Iterator[Finding]:
    prompt = "What time is it in Paris? Use the get_time tool; do not guess."
    request = ChatRequest(settings.model, _user(prompt), max_tokens=1024, tools=(TOOL,))
    seen = _chat(settings, request, timeout)
    calls = list(seen.tool_calls.values())
    if seen.status != 200 or seen.error:
        yield Finding("tool call", "a get_time call", _failure(seen), "FAIL")
        return
    if not calls:
        yield Finding("tool call", "a get_time call", "answered without calling", "differs",
                      _cost(settings, seen))  # fmt: skip
        return
    try:
        arguments = json.loads(calls[0]["arguments"] or "{}")
    except ValueError:
        arguments = None
    observed = f"{calls[0]['name']}({calls[0]['arguments']}), finish {seen.finish_reasons[-1:]}"
    good = calls[0]["name"] == "get_time" and isinstance(arguments, dict)
    yield Finding("tool call", "a get_time call with JSON arguments", observed,
                  "ok" if good else "FAIL", _cost(settings, seen))  # fmt: skip


def _image(settings: Settings, timeout: float) -> Iterator[Finding]:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{RED_PNG}",
                                                 "detail": "low"}}  # fmt: skip
    content = [image, {"type": "text", "text": "What colour is this image? One word."}]
    seen = _chat(settings, ChatRequest(settings.model, _user(content), max_tokens=1024), timeout)
    ok = seen.status == 200 and not seen.error and seen.answer_chars
    observed = f"{seen.answer_chars} chars of answer" if ok else _failure(seen)
    yield Finding("image part", "an answer about the image", observed, "ok" if ok else "FAIL",
                  _cost(settings, seen))  # fmt: skip


def _bad_model(settings: Settings, timeout: float) -> Iterator[Finding]:
    body = {"model": "step-magic-doctor-no-such-model", "messages": list(_user("Hi"))}
    seen = observe(API["chat"], settings, body, timeout=timeout)
    expected = "4xx with error.message"
    if seen.status in (401, 403):  # the key was refused before the name was looked at
        yield Finding("bad model name", expected, f"{seen.status}: {seen.error}", "FAIL")
    elif 400 <= seen.status < 500 and seen.error:
        yield Finding("bad model name", expected, f"{seen.status}: {seen.error}", "ok")
    else:
        yield Finding("bad model name", expected, f"{seen.status}, accepted", "differs")


def _failure(seen: Observed) -> str:
    what = seen.error or seen.content_type or "no body"
    return f"{seen.status}: {what}"

"""Logged calls as text: one line each (``%step_history``, ``step-magic history``) or a
Markdown transcript (``step-magic history --markdown``).

Both read only the record, which has no place for the key, so neither can show it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from step_magic.memory.records import CallRecord

PROMPT_CHARS = 60  # a prompt's share of a one-line listing


def call_line(record: CallRecord) -> str:
    """When, model, status, tokens out and the start of the prompt, on one line."""
    prompt = " ".join(record.prompt.split())
    prompt = prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…"
    tokens = record.completion_tokens or 0
    return f"{_when(record)}  {record.model:<16} {record.status:<11} {tokens:>6} out  {prompt}"


def calls_markdown(records: Iterable[CallRecord]) -> str:
    """The calls as one Markdown document: a heading and provenance line per call, then its
    prompt, its reasoning (quoted, so it reads as an aside) and its answer."""
    return "\n\n---\n\n".join(_call_markdown(record) for record in records) + "\n"


def _call_markdown(record: CallRecord) -> str:
    facts = [_when(record), record.model, f"effort {record.effort or 'default'}", record.status]
    if record.thread:
        facts.append(f"thread {record.thread}")
    if record.completion_tokens is not None:
        facts.append(f"{record.completion_tokens:,} tokens out")
    if record.trace_id:
        facts.append(f"trace id {record.trace_id}")
    parts = [f"## Call {record.id}", "*" + " · ".join(facts) + "*", "**Prompt**", record.prompt]
    if record.reasoning.strip():
        quoted = "\n".join(f"> {line}".rstrip() for line in record.reasoning.strip().splitlines())
        parts += ["**Reasoning**", quoted]
    parts += ["**Answer**", record.answer.strip() or "*(no answer)*"]
    if record.error:
        parts.append(f"**Error:** {record.error}")
    return "\n\n".join(parts)


def _when(record: CallRecord) -> str:
    return datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")

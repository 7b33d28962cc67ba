"""Logged calls as text: one line each (``%step_history``, ``step-magic history``) or a
Markdown transcript (``step-magic history --markdown``).

Both read only the record, which has no place for the key, so neither can show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from step_magic.core.answers import as_section
from step_magic.memory.records import CallRecord

PROMPT_CHARS = 60  # a prompt's share of a one-line listing
PART_LEVEL = 3  # a call's prompt, reasoning and answer are ``###`` sections of its ``##``


def call_line(record: CallRecord) -> str:
    """When, model, status, tokens out and the start of the prompt, on one line."""
    prompt = " ".join(record.prompt.split())
    prompt = prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…"
    tokens = record.completion_tokens or 0
    return f"{_when(record)}  {record.model:<16} {record.status:<11} {tokens:>6} out  {prompt}"


def calls_markdown(records: Sequence[CallRecord]) -> str:
    """The calls as one Markdown document with one outline: the title (``#``), a section per
    call (``##``, then its provenance line) and in it the prompt, the reasoning (quoted, so it
    reads as an aside) and the answer (``###``). Headings the prompt or answer hold are moved
    below their ``###``, so an answer's own ``## Summary`` does not read as another call, and
    a code block an answer left open is closed, so it does not swallow the calls after it."""
    count = f"{len(records)} call{'' if len(records) == 1 else 's'}"
    calls = "\n\n---\n\n".join(_call_markdown(record) for record in records)
    return f"# step-magic history: {count}, newest first\n\n{calls}\n"


def _call_markdown(record: CallRecord) -> str:
    facts = [_when(record), record.model, f"effort {record.effort or 'default'}", record.status]
    if record.thread:
        facts.append(f"thread {record.thread}")
    if record.completion_tokens is not None:
        facts.append(f"{record.completion_tokens:,} tokens out")
    if record.trace_id:
        facts.append(f"trace id {record.trace_id}")
    prompt = as_section(record.prompt, PART_LEVEL)
    parts = [f"## Call {record.id}", "*" + " · ".join(facts) + "*", "### Prompt", prompt]
    if record.reasoning.strip():
        reasoning = as_section(record.reasoning.strip(), PART_LEVEL)
        quoted = "\n".join(f"> {line}".rstrip() for line in reasoning.splitlines())
        parts += ["### Reasoning", quoted]
    answer = as_section(record.answer.strip(), PART_LEVEL) or "*(no answer)*"
    parts += ["### Answer", answer]
    if record.error:
        parts.append(f"**Error:** {record.error}")
    return "\n\n".join(parts)


def _when(record: CallRecord) -> str:
    return datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M")

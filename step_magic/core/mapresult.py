"""How a ``--map`` run is going and how it went: plain counts the scheduler fills in.

The scheduler (``batch``) produces them and the progress display (``display``) shows them;
neither knows the other, so the types they share live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from step_magic.core.text import dollars, seconds


@dataclass(frozen=True)
class MapProgress:
    """Counts so far, for a progress display; ``stopping`` once Ctrl-C was pressed."""

    total: int
    done: int
    failed: int
    cached: int
    retrying: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    elapsed: float
    eta: float | None
    stopping: bool = False


@dataclass
class MapSummary:
    """How a map went. ``done`` includes ``cached`` rows; tokens and cost are this run's."""

    rows: int
    done: int = 0
    failed: int = 0
    flagged: int = 0  # answered, with a doubt in <column>_error (cut at the token limit)
    cached: int = 0
    retried: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    elapsed: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early on its own (a fatal error)

    def text(self) -> str:
        """A short human summary: counts, throughput, tokens, cost, and the first errors."""
        sent = self.done - self.cached + self.failed
        counts = [f"{self.done:,} of {self.rows:,} rows answered"]
        counts += [f"{self.cached:,} from the cache"] if self.cached else []
        counts += [f"{self.failed:,} failed"]
        counts += [f"{self.flagged:,} flagged in the error column"] if self.flagged else []
        counts += [f"{self.retried:,} retries"] if self.retried else []
        pace = f", {sent / self.elapsed:.1f} rows/s" if sent and self.elapsed > 0 else ""
        tokens = f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens"
        lines = [
            f"{', '.join(counts)} · {seconds(self.elapsed)}{pace}",
            tokens + ("" if self.cost is None else f" · {dollars(self.cost)}"),
        ]
        if self.interrupted or self.stopped:
            why = "interrupted" if self.interrupted else f"stopped: {self.stopped}"
            lines.append(f"{why} — {self.rows - self.done - self.failed:,} rows not run")
        return "\n".join(lines + [f"  {error}" for error in self.first_errors])


@dataclass(frozen=True)
class MapPlan:
    """What a map would send (``--dry-run``): the rows, a prompt-token and price estimate, and
    the first request's body exactly as it would go over the wire (None: no rows), and where."""

    rows: int
    tokens: int
    cost: float | None
    concurrency: int
    rpm: float | None
    first_body: dict[str, Any] | None
    endpoint: str | None = None
    api: str = "chat"  # the wire API the body is written for (wire.apis)


@dataclass
class MapFileSummary(MapSummary):
    """How a map into a file went: ``MapSummary``'s counts for this run's rows, the rows the
    output already held (``skipped``: not asked again), and where the rows are. ``written``:
    the output is complete; otherwise the finished rows wait in ``<output>.parts/`` for a
    re-run to continue (Ctrl-C, or a stop on an error every row would get)."""

    output: str = ""
    skipped: int = 0
    written: bool = False

    def text(self) -> str:
        """``MapSummary.text``, then the rows already done and where the rows are."""
        lines = super().text().splitlines()
        if self.skipped:
            lines.insert(1, f"{self.skipped:,} rows were already in the output (not asked again)")
        where = (
            f"written to {self.output}"
            if self.written
            else f"finished rows kept in {self.output}.parts/: run again to continue"
        )
        return "\n".join([*lines, where])

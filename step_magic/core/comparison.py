"""The same prompt answered once per variant (an effort, a model, or both), side by side.

``%%step --effort low,high`` and ``step_magic.compare`` return this: the results in the
order the variants were named, with a summary row each for a table. A comparison is not a
conversation turn (there is no single answer to remember), so it never enters memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from step_magic.core import rendering
from step_magic.core.errors import InputError
from step_magic.core.result import StepResult

MAX_VARIANTS = 6


@dataclass(frozen=True)
class Variant:
    """One column: the model and effort it asks with."""

    model: str
    effort: str | None

    def label(self, *, models: bool, efforts: bool) -> str:
        """What tells this column apart from the others (both parts when both vary)."""
        effort = f"effort {self.effort}" if self.effort else "default effort"
        if models and efforts:
            return f"{self.model} · {effort}"
        return self.model if models else effort


def variants(models: Sequence[str], efforts: Sequence[str | None]) -> list[Variant]:
    """Every model with every effort, in the order given; InputError past ``MAX_VARIANTS``."""
    every = [Variant(m, e) for m, e in itertools.product(models, efforts)]
    if len(set(every)) != len(every):
        raise InputError("each model and effort may be named once in a comparison")
    if len(every) > MAX_VARIANTS:
        raise InputError(f"a comparison runs at most {MAX_VARIANTS} variants, not {len(every)}")
    if len(every) < 2:
        raise InputError("a comparison needs two variants or more, e.g. --effort low,high")
    return every


@dataclass
class Comparison:
    """The results of one comparison, in the order of ``labels``."""

    prompt: str
    labels: tuple[str, ...]
    results: tuple[StepResult, ...]
    # the cell whose live progress became this grid: it is not shown there a second time
    shown_in: str | None = field(default=None, repr=False, compare=False)

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per variant: what a reader compares first."""
        return [
            {
                "variant": label,
                "status": result.status,
                "reasoning chars": len(result.reasoning),
                "answer chars": len(result.answer),
                "tokens": result.usage.total if result.usage else None,
                "cost $": round(result.cost, 6) if result.cost is not None else None,
                "first token s": (
                    round(result.first_token, 2) if result.first_token is not None else None
                ),
                "total s": round(result.elapsed, 2),
            }
            for label, result in zip(self.labels, self.results, strict=True)
        ]

    def table(self) -> Any:
        """The summary rows as a pandas DataFrame (pandas is imported here, when asked for)."""
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            raise InputError("Comparison.table() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows()).set_index("variant")

    def _ipython_display_(self) -> None:
        """IPython shows the static form, or only a line where this very cell's live view
        already became it (``r = %step ...`` ends a cell with the result)."""
        rendering.show("comparison", self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The side-by-side grid for any frontend (plain text: the repr)."""
        return rendering.mimebundle("comparison", self, repr(self))

    def __repr__(self) -> str:
        pairs = zip(self.labels, self.results, strict=True)
        parts = ", ".join(f"{label}: {result.status}" for label, result in pairs)
        return f"Comparison({parts})"

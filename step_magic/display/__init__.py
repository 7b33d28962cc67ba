"""Everything step-magic shows: the live notebook panel, the terminal stream, the static
form a saved notebook keeps, Markdown rendering, dry runs and ``--map`` progress.
"""

from __future__ import annotations

from typing import Any

from step_magic.core import rendering


def _result(result: Any) -> dict[str, Any]:
    from step_magic.display.bundles import result_bundle

    return result_bundle(result)


def _comparison(comparison: Any) -> dict[str, Any]:
    from step_magic.display.compare import comparison_bundle

    return comparison_bundle(comparison)


def _show_result(result: Any) -> None:
    from step_magic.display.frontend import show_in_ipython

    show_in_ipython(result, comparison=False)


def _show_comparison(comparison: Any) -> None:
    from step_magic.display.frontend import show_in_ipython

    show_in_ipython(comparison, comparison=True)


# Results render themselves through these (core.rendering); imported when first shown.
rendering.register("result", _result, _show_result)
rendering.register("comparison", _comparison, _show_comparison)

"""How results show themselves in any frontend: ``_repr_mimebundle_`` asks the renderer that
``display/`` registered.

marimo, VS Code and terminal IPython read an object's ``_repr_mimebundle_``, not formatters
registered with IPython by name, so a ``StepResult`` must render itself. The safe HTML lives
in ``display/`` (a layer above this one), which registers its renderers when it is imported,
as it is by every call the Python API makes; an object made without it still shows its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Bundle = dict[str, Any]
_RENDERERS: dict[str, Callable[[Any], Bundle]] = {}
_SHOWERS: dict[str, Callable[[Any], None]] = {}


def register(kind: str, render: Callable[[Any], Bundle], show: Callable[[Any], None]) -> None:
    """``render`` turns an object of ``kind`` (``"result"``, ``"comparison"``) into a bundle;
    ``show`` displays it in IPython (``_ipython_display_``), or not, when the cell that made
    it already shows it."""
    _RENDERERS[kind] = render
    _SHOWERS[kind] = show


def show(kind: str, shown: Any) -> None:
    """IPython's ``display(shown)``, through the registered ``show``, else as plain text."""
    show_it = _SHOWERS.get(kind)
    if show_it is not None:
        show_it(shown)
    else:
        print(mimebundle(kind, shown, str(shown))["text/plain"])


def mimebundle(kind: str, shown: Any, plain: str) -> Bundle:
    """The registered renderer's bundle for ``shown``, or ``plain`` text without one."""
    render = _RENDERERS.get(kind)
    return render(shown) if render is not None else {"text/plain": plain}

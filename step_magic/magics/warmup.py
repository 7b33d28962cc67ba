"""Warm the call path in the background after ``%load_ext``, while the user types.

The first call in a fresh kernel paid about a second for imports (openai, httpx, ipywidgets,
markdown-it, Pygments) and the TLS context before its first text could appear, against tens
of milliseconds for later calls. ``%load_ext`` itself must stay fast and import none of
them, so a daemon thread does the work half a second later, silently: a failure here only
means the first call pays as before. Kernels only: a script or a terminal session may exit
at once, and a thread still importing while the interpreter shuts down can crash it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

DELAY_SECONDS = 0.5


def warm_up_later(shell: Any) -> None:
    """Start the warm-up thread if ``shell`` runs in a Jupyter kernel."""
    if getattr(shell, "kernel", None) is None:
        return
    threading.Thread(target=_warm_up, name="step-magic-warm-up", daemon=True).start()


def _warm_up() -> None:
    time.sleep(DELAY_SECONDS)
    with contextlib.suppress(Exception):
        import openai

        import step_magic.display.panel  # noqa: F401 - the panel's widgets (anywidget)
        from step_magic.display.markdown import answer_html
        from step_magic.wire.chat import http, tls_context

        openai.APIStatusError  # noqa: B018 - the exception types every failure is worded in
        http().Client(verify=tls_context()).close()  # the HTTP stack and the CA bundle (~25 ms)
        answer_html("`x` $y$\n\n```python\nx = 1\n```")  # the parser and a lexer, cached

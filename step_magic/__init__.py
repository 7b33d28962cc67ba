"""step-magic: stream StepFun reasoning models into Jupyter and IPython.

``%load_ext step_magic`` registers ``%%step``, ``%step`` and ``%step_config``. Importing this
package stays cheap: openai, widgets and the data libraries load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with the running shell (``%load_ext step_magic``)."""
    from .magic import StepMagics
    from .magic_tools import StepToolMagics

    magics = StepMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.register_magics(StepToolMagics(ipython, magics))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and stop the local simulator if it runs (``%unload_ext``)."""
    from .magic import StepMagics

    magics = ipython.magics_manager.registry.pop(StepMagics.__name__, None)
    ipython.magics_manager.registry.pop("StepToolMagics", None)
    if magics is not None:
        magics.release()
    for kind in ("line", "cell"):
        table = ipython.magics_manager.magics[kind]
        for name in ("step", "step_config", "step_chats", "step_history", "step_record"):
            table.pop(name, None)

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
    from step_magic.magics.bookkeeping import StepToolMagics
    from step_magic.magics.step import StepMagics

    magics = StepMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.register_magics(StepToolMagics(ipython, magics))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics, stop the simulator, close the history (``%unload_ext``)."""
    from step_magic.magics.bookkeeping import StepToolMagics
    from step_magic.magics.step import StepMagics

    manager = ipython.magics_manager
    for cls in (StepMagics, StepToolMagics):
        instance = manager.registry.pop(cls.__name__, None)
        if instance in ipython.configurables:
            ipython.configurables.remove(instance)
        if isinstance(instance, StepMagics):
            instance.release()
        for kind, names in cls.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)

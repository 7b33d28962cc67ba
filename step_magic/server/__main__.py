"""Run the local StepFun-compatible server: ``python -m step_magic.server --port 8765``."""

from step_magic.server.cli import run

raise SystemExit(run())

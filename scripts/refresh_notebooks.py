"""Execute the example notebooks offline and save them with their outputs.

Each notebook runs top to bottom in a fresh kernel with no API key, so its first cell starts
the bundled local simulator (and says so); the outputs committed to the repo are therefore
reproducible anywhere. The kernel works in a temporary folder, so files a notebook writes
(a recorded lesson, the history database) never land in the repo.

    python scripts/refresh_notebooks.py            # all of notebooks/*.ipynb
    python scripts/refresh_notebooks.py teaching   # one of them
    python scripts/refresh_notebooks.py --output /tmp/out teaching   # leave notebooks/ alone
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SECRET_VARIABLES = ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL")
POLL_SLICE = 1.0  # seconds: the longest a reply can sit unread (see PatientClient)


class PatientClient(NotebookClient):
    """nbclient whose wait for a cell's reply polls in one-second slices.

    On a loaded machine the asyncio poll of the shell channel was seen missing its wake-up:
    the execute_reply sat in the socket until the cell's whole timeout ran out (it arrived
    exactly then, 90 s after the cell's idle status, in 2 of 16 runs). A new poll sees the
    message at once, so polling in slices bounds that wait to a second.
    """

    async def async_start_new_kernel_client(self) -> Any:
        client = await super().async_start_new_kernel_client()
        channel = client.shell_channel
        channel.get_msg = _sliced(channel.get_msg)
        return client


def _sliced(get_msg: Any) -> Any:
    async def sliced(timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else deadline - time.monotonic()
            try:
                return await get_msg(timeout=max(0.0, min(POLL_SLICE, left)))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return sliced


def execute(path: Path, workdir: Path, timeout: float = 300) -> Any:
    """Run the notebook at ``path`` offline in ``workdir``; return it with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    saved = {name: os.environ.pop(name) for name in SECRET_VARIABLES if name in os.environ}
    previous_history = os.environ.get("STEP_MAGIC_HISTORY")
    os.environ["STEP_MAGIC_HISTORY"] = str(workdir / "history.sqlite3")
    try:
        client = PatientClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    finally:
        os.environ.update(saved)
        if previous_history is None:
            os.environ.pop("STEP_MAGIC_HISTORY", None)
        else:
            os.environ["STEP_MAGIC_HISTORY"] = previous_history
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--output", type=Path, help="write the executed notebooks here instead")
    args = parser.parse_args(argv)
    paths = [NOTEBOOKS / f"{name}.ipynb" for name in args.names] or sorted(
        NOTEBOOKS.glob("*.ipynb")
    )
    for path in paths:
        with tempfile.TemporaryDirectory() as workdir:
            notebook = execute(path, Path(workdir))
        target = args.output / path.name if args.output else path
        nbformat.write(notebook, target)
        print(f"refreshed {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

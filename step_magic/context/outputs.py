"""Remember the images earlier cells displayed, so ``--with @last`` can send "the plot above".

Inline matplotlib figures are closed once their cell ends and never enter ``Out``; the only
trace left is the image the kernel published. The magic registers ``record`` as a display
hook; this module keeps the last few images by cell number, as plain bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

IMAGE_TYPES = ("image/png", "image/jpeg")


class OutputRecorder:
    """The last image each of the most recent ``keep`` cells displayed."""

    def __init__(self, execution_count: Callable[[], int], keep: int = 20) -> None:
        self._count = execution_count
        self._keep = keep
        self._by_cell: OrderedDict[int, bytes] = OrderedDict()

    def hook(self, message: dict[str, Any]) -> dict[str, Any]:
        """ipykernel display-publisher hook: note the image, pass the message on unchanged."""
        data = message.get("content", {}).get("data", {})
        self.record(data)
        return message

    def record(self, data: Mapping[str, Any]) -> None:
        """Keep the image in a display bundle, if it has one."""
        for mime in IMAGE_TYPES:
            encoded = data.get(mime)
            if isinstance(encoded, str):
                try:
                    image = base64.b64decode(encoded, validate=False)
                except (binascii.Error, ValueError):
                    return
                cell = self._count()
                self._by_cell.pop(cell, None)
                self._by_cell[cell] = image
                while len(self._by_cell) > self._keep:
                    self._by_cell.popitem(last=False)
                return

    def references(self) -> dict[str, bytes]:
        """``@last`` and ``@N`` (cell number) for every image kept."""
        refs = {f"@{cell}": image for cell, image in self._by_cell.items()}
        if self._by_cell:
            refs["@last"] = next(reversed(self._by_cell.values()))
        return refs

"""``--map --dry-run``: what a map would send, worked out without sending anything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from step_magic.batch.table import NO_NAMES, MapOptions, row_prompts
from step_magic.core.mapresult import MapPlan
from step_magic.core.models import estimate_cost
from step_magic.core.request import ChatRequest, estimate_tokens


def plan_map(
    frame: object,
    template: str,
    make_request: Callable[[str], ChatRequest],
    options: MapOptions,
    *,
    body: Callable[[ChatRequest], dict[str, Any]],
    namespace: Mapping[str, object] = NO_NAMES,
    endpoint: str | None = None,
    api: str = "chat",
) -> MapPlan:
    """The plan of a map; ``body`` turns a request into what the chosen API would send.

    Every row's prompt is built (so a bad reference fails here, as it would in a run), and
    the prompts' tokens are estimated; replies cost more, and are not estimated.
    """
    prompts = row_prompts(frame, template, options, namespace)
    requests = [make_request(prompt) for prompt in prompts]
    tokens = sum(estimate_tokens(request.messages) for request in requests)
    cost = estimate_cost(requests[0].model, tokens, 0) if requests else None
    first = body(requests[0]) if requests else None
    pace = (options.concurrency, options.rpm)
    return MapPlan(len(requests), tokens, cost, *pace, first, endpoint, api)

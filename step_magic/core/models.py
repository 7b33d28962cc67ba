"""What step-magic knows about StepFun's models: inputs, effort levels, context and prices.

This is the single place to update when StepFun changes a model or a price. Unknown model
names are not errors here: new models appear before we learn about them, and the server is
the judge of what it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from step_magic.core.errors import InputError

EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class ModelInfo:
    """Capabilities and prices (USD per million tokens) of one StepFun model."""

    name: str
    efforts: tuple[str, ...]
    images: bool
    video: bool
    context_tokens: int
    price_input: float
    price_cached_input: float
    price_output: float


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo("step-3.7-flash", EFFORTS, True, True, 256_000, 0.20, 0.04, 1.15),
        # reasoning_effort is not documented for step-3.5-flash: we never send it.
        ModelInfo("step-3.5-flash", (), False, False, 256_000, 0.10, 0.02, 0.30),
        ModelInfo("step-3.5-flash-2603", ("low", "high"), False, False, 256_000, 0.10, 0.02, 0.30),
    )
}

DEFAULT_MODEL = "step-3.7-flash"


def model_info(name: str) -> ModelInfo | None:
    """Return what we know about ``name``, or None for a model we have not heard of."""
    return MODELS.get(name)


def check_effort(model: str, effort: str | None) -> None:
    """Raise ValueError for an effort the API would reject for ``model``.

    Checking here turns a 400 from the server into a one-line message that says which
    levels the model takes. Unknown models pass: the server decides.
    """
    if effort is None:
        return
    if effort not in EFFORTS:
        raise InputError(f"--effort must be one of {', '.join(EFFORTS)}, not {effort!r}")
    info = model_info(model)
    if info is None or effort in info.efforts:
        return
    if not info.efforts:
        raise InputError(f"{model} takes no reasoning effort; drop --effort or use step-3.7-flash")
    raise InputError(f"{model} takes --effort {' or '.join(info.efforts)}, not {effort!r}")


def estimate_cost(model: str, prompt: int, completion: int, cached: int = 0) -> float | None:
    """Estimate the price in USD of one call, or None when the model's prices are unknown."""
    info = model_info(model)
    if info is None:
        return None
    fresh = max(prompt - cached, 0)
    return (
        fresh * info.price_input + cached * info.price_cached_input + completion * info.price_output
    ) / 1_000_000

"""User functions become tools: the schema the model sees and the checks on what it sends."""

from __future__ import annotations

import enum
import functools
import json
import math
from typing import Annotated, Any, Literal

import pandas as pd
import pydantic
import pytest

from step_magic.core.errors import ToolError
from step_magic.tools.build import build_toolbox
from step_magic.tools.schema import function_tool
from step_magic.tools.toolbox import Toolbox, result_text


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


def forecast(
    city: str,
    days: int = 3,
    unit: Unit = Unit.CELSIUS,
    detail: Literal["short", "long"] = "short",
    hours: list[int] | None = None,
    ratio: float = 0.5,
    labels: dict[str, bool] | None = None,
    note: Annotated[str, "free text shown to the forecaster"] = "",
) -> str:
    """Forecast the weather for a city.

    Args:
        city: the city name, in English
        days: how many days ahead
    """
    return f"{city}|{days}|{unit.name}|{detail}|{hours}|{ratio}|{labels}|{note}"


def test_the_schema_follows_the_signature_type_hints_and_docstring() -> None:
    tool = function_tool("forecast", forecast)
    assert tool.description == "Forecast the weather for a city."
    params = tool.parameters
    assert params["required"] == ["city"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert props["city"] == {"type": "string", "description": "the city name, in English"}
    assert props["days"] == {"type": "integer", "default": 3, "description": "how many days ahead"}
    assert props["unit"] == {"enum": ["celsius", "fahrenheit"], "default": "celsius"}
    assert props["detail"] == {"enum": ["short", "long"], "default": "short"}
    assert props["hours"] == {
        "anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}],
        "default": None,
    }
    assert props["ratio"] == {"type": "number", "default": 0.5}
    assert props["labels"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "boolean"},
    }
    assert props["note"]["description"] == "free text shown to the forecaster"
    assert tool.spec()["type"] == "function"
    assert tool.spec()["function"]["name"] == "forecast"


def test_arguments_are_converted_to_what_the_function_expects() -> None:
    tool = function_tool("forecast", forecast)
    assert tool.run(city="Oslo") == "Oslo|3|CELSIUS|short|None|0.5|None|"
    assert (
        tool.run(city="Oslo", days=2, unit="fahrenheit", hours=[9, 18], ratio=1, labels={"a": True})
        == "Oslo|2|FAHRENHEIT|short|[9, 18]|1.0|{'a': True}|"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument(s): city"),
        ({"city": 3}, "city must be a string, not an integer"),
        ({"city": "x", "days": True}, "days must be a integer, not a boolean"),
        ({"city": "x", "days": 1.5}, "days must be a integer, not a number"),
        ({"city": "x", "unit": "kelvin"}, "unit must be one of ['celsius', 'fahrenheit']"),
        ({"city": "x", "hours": [1, "2"]}, "hours[1] must be a integer, not a string"),
        ({"city": "x", "planet": "Mars"}, "unknown argument(s): planet"),
    ],
)
def test_bad_arguments_are_tool_errors_the_model_can_read(
    arguments: dict[str, Any], message: str
) -> None:
    tool = function_tool("forecast", forecast)
    with pytest.raises(ToolError) as caught:
        tool.run(**arguments)
    assert message in str(caught.value)


def test_numpy_and_sphinx_docstrings_describe_parameters() -> None:
    def numpy_style(a: int, b: str) -> None:
        """Do it.

        Parameters
        ----------
        a : int
            the first
            of two
        b : str
            the second
        """

    def sphinx_style(a: int) -> None:
        """Do it too.

        :param a: the only one
        :returns: nothing
        """

    numpy_props = function_tool("n", numpy_style).parameters["properties"]
    assert numpy_props["a"]["description"] == "the first of two"
    assert numpy_props["b"]["description"] == "the second"
    sphinx = function_tool("s", sphinx_style)
    assert sphinx.description == "Do it too."
    assert sphinx.parameters["properties"]["a"]["description"] == "the only one"


class Point(pydantic.BaseModel):
    x: int
    y: int


class Path(pydantic.BaseModel):
    name: str
    points: list[Point]


def test_pydantic_models_bring_their_schema_and_validation() -> None:
    def length(path: Path) -> int:
        """How many points a path has."""
        return len(path.points)

    tool = function_tool("length", length)
    prop = tool.parameters["properties"]["path"]
    assert prop["properties"]["points"]["items"] == {"$ref": "#/$defs/Point"}
    assert "Point" in tool.parameters["$defs"]  # hoisted to where the reference points
    assert tool.run(path={"name": "p", "points": [{"x": 1, "y": 2}]}) == 1
    with pytest.raises(ToolError, match="path: 1 validation error"):
        tool.run(path={"name": "p", "points": [{"x": "one", "y": 2}]})


def test_unannotated_parameters_use_their_default_type_or_fail_naming_them() -> None:
    def scaled(value: float, factor=2):  # type: ignore[no-untyped-def]
        return value * factor

    assert function_tool("scaled", scaled).parameters["properties"]["factor"]["type"] == "integer"

    def untyped(value):  # type: ignore[no-untyped-def]
        return value

    with pytest.raises(ValueError, match="parameter 'value' has no type hint"):
        function_tool("untyped", untyped)


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [(pd.DataFrame, "DataFrame"), (tuple[int, str], "fixed-length"), (dict[int, str], "int keys")],
)
def test_types_without_a_json_form_are_refused_naming_the_parameter(
    annotation: Any, shown: str
) -> None:
    def func(data: Any) -> None:
        """Takes something."""

    func.__annotations__["data"] = annotation
    with pytest.raises(ValueError, match="has no JSON form") as caught:
        function_tool("func", func)
    message = str(caught.value)
    assert message.startswith("--tools func: parameter 'data' has type")
    assert shown in message
    assert "\n" not in message


def test_star_args_are_refused() -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(ValueError, match=r"parameter 'values' is \*args"):
        function_tool("spread", spread)


def test_positional_only_parameters_are_passed_by_position() -> None:
    def power(base: int, exponent: int = 2, /) -> int:
        return int(base**exponent)

    tool = function_tool("power", power)
    assert tool.run(base=3) == 9
    assert tool.run(base=2, exponent=5) == 32


def test_the_toolbox_turns_every_failure_into_a_result_for_the_model() -> None:
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    box = Toolbox([function_tool("divide", divide)], budget_chars=1000)
    assert box.call("divide", '{"a": 1, "b": 4}') == box.call("divide", '{"b": 4, "a": 1}')
    assert box.call("divide", '{"a": 1, "b": 4}').text == "0.25"
    failed = box.call("divide", '{"a": 1, "b": 0}')
    assert failed.failed
    assert failed.text == "Error: ZeroDivisionError: float division by zero"
    assert box.call("divide", '{"a": 1,').text.startswith("Error: the arguments are not valid")
    assert box.call("divide", "[1, 2]").text == "Error: the arguments must be a JSON object"
    assert box.call("multiply", "{}").text == (
        "Error: there is no tool 'multiply'; the tools are divide"
    )


def test_results_are_json_text_or_bounded_summaries() -> None:
    assert result_text("plain words", 100) == "plain words"
    assert result_text({"rows": 3, "ok": True}, 100) == '{"rows": 3, "ok": true}'
    assert result_text(None, 100) == "null"
    frame = pd.DataFrame({"region": ["north", "south"] * 500, "sales": range(1000)})
    summary = result_text(frame, 3000)
    assert "1,000 rows × 2 columns" in summary
    assert len(summary) <= 3000 + 40
    long = result_text("x" * 5000, 100)
    assert long.startswith("x" * 100)
    assert long.endswith("(cut: 5,000 chars in all)")


def test_build_toolbox_names_what_is_wrong() -> None:
    def area(width: float, height: float) -> float:
        """Area of a rectangle."""
        return width * height

    namespace = {"area": area, "answer": 42}
    box = build_toolbox(["area"], namespace, budget_chars=1000)
    assert [spec["function"]["name"] for spec in box.specs()] == ["area"]
    with pytest.raises(ValueError, match="no variable 'aera' in the notebook; did you mean area"):
        build_toolbox(["aera"], namespace, budget_chars=1000)
    with pytest.raises(ValueError, match="answer is an int, not a function or a DataFrame"):
        build_toolbox(["answer"], namespace, budget_chars=1000)


def test_non_finite_defaults_are_left_out_of_the_schema() -> None:
    def within(x: float, limit: float = math.inf) -> bool:
        """Is x below the limit?"""
        return x < limit

    tool = function_tool("within", within)
    assert "default" not in tool.parameters["properties"]["limit"]
    json.dumps(tool.spec(), allow_nan=False)  # what the HTTP client will do


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class LoudError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_whatever_a_tool_returns_or_raises_becomes_a_bounded_clean_result() -> None:
    def odd() -> object:
        """Returns an object that cannot be shown."""
        return Unprintable()

    def loud() -> None:
        """Raises an exception that cannot be shown."""
        raise LoudError

    def chatty() -> None:
        """Raises a huge message."""
        raise ValueError("x" * 2_000_000)

    def surrogate() -> str:
        """Returns text no Jupyter message can carry."""
        return "ok\ud800x\x1b[2J"

    box = Toolbox(
        [function_tool(f.__name__, f) for f in (odd, loud, chatty, surrogate)], budget_chars=500
    )
    assert box.call("odd", "{}").text == (
        "Error: the result (Unprintable) could not be shown: RuntimeError"
    )
    assert box.call("loud", "{}").text == (
        "Error: LoudError: (LoudError whose message cannot be shown)"
    )
    for name, arguments in [("chatty", "{}"), ("x" * 1_000_000, "{}"), ("odd", '{"k": 1}' * 9)]:
        assert len(box.call(name, arguments).text) < 600
    assert box.call("surrogate", "{}").text == "ok\ufffdx\ufffd[2J"


def test_partials_callable_objects_and_classes_are_tools_async_functions_are_refused() -> None:
    def scale(value: float, factor: float) -> float:
        """Scale a value."""
        return value * factor

    double = functools.partial(scale, factor=2.0)
    tool = function_tool("double", double)
    assert tool.description == "Scale a value."
    assert tool.run(value=3) == 6.0

    class Counter:
        """Counts words."""

        def __call__(self, text: str) -> int:
            return len(text.split())

    assert function_tool("counter", Counter()).description == "Counts words."
    assert function_tool("counter", Counter()).run(text="a b c") == 3

    async def fetch(url: str) -> str:
        return url

    with pytest.raises(ValueError, match="async functions cannot be tools yet"):
        function_tool("fetch", fetch)


def test_null_for_a_parameter_with_a_default_means_the_default() -> None:
    def top(n: int, limit: int = 10, label: str | None = "x") -> str:
        """Top n."""
        return f"{n} {limit} {label}"

    tool = function_tool("top", top)
    assert tool.run(n=3.0, limit=None, label=None) == "3 10 None"
    with pytest.raises(ToolError, match="n must be a integer, not null"):
        tool.run(n=None)


def test_a_figure_is_not_a_tool_result() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def chart() -> object:
        """Make a chart."""
        figure, _ = plt.subplots()
        return figure

    outcome = Toolbox([function_tool("chart", chart)], budget_chars=500).call("chart", "{}")
    assert outcome.failed
    assert outcome.text.startswith("Error: the function returned an image (Figure)")


def test_system_exit_in_a_tool_is_an_error_result() -> None:
    def cli(args: str) -> None:
        """A wrapped command line."""
        raise SystemExit(3)

    outcome = Toolbox([function_tool("cli", cli)], budget_chars=500).call("cli", '{"args": ""}')
    assert outcome.failed
    assert outcome.text == "Error: SystemExit: 3"

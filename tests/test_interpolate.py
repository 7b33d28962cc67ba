"""Brace-safe interpolation: only resolving reference paths change, everything else is kept."""

from __future__ import annotations

import string
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from step_magic.context.interpolate import (
    UnknownReference,
    interpolate,
    lookup,
    parse_reference,
    resolve,
    suggest,
)


class Model:
    coef_: ClassVar[list[float]] = [0.5, -1.25]

    @property
    def broken(self) -> int:
        raise RuntimeError("a property that fails must not crash the prompt")


NAMESPACE: dict[str, object] = {
    "df_sales": "SALES",
    "d": {"k": "dict value", "_private": "underscore key"},
    "items": ["first", "second"],
    "model": Model(),
    "_": "last output",
    "_12": "output 12",
    "Out": {12: "out 12"},
    "none": None,
}

# Text that may contain anything: braces, quotes, backslashes, unicode, newlines.
ANY_TEXT = st.text(
    alphabet=st.sampled_from(list("{}[]().\"'\\$^_:,;#!?=+-*/ \n\tabcxyzé中🙂0123456789")),
    max_size=200,
)


@given(ANY_TEXT)
def test_any_text_with_an_empty_namespace_is_unchanged(text: str) -> None:
    result = interpolate(text, {})
    assert result.text == text
    assert result.used == ()


@given(ANY_TEXT)
def test_groups_that_name_nothing_in_the_namespace_are_unchanged(text: str) -> None:
    # The namespace names only identifiers that the alphabet above cannot spell.
    namespace = {"QQQ": 1, "WWW": [1], "RRR": {"a": 1}}
    assert interpolate(text, namespace).text == text


IDENTIFIERS = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)
PLAIN = st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?\n", max_size=40)


@given(IDENTIFIERS, PLAIN, PLAIN, st.integers() | st.text(max_size=20) | st.none())
def test_a_resolving_reference_is_replaced(
    name: str, before: str, after: str, value: object
) -> None:
    result = interpolate(f"{before}{{{name}}}{after}", {name: value})
    assert result.text == f"{before}{value}{after}"
    assert result.used == (name,)


@given(IDENTIFIERS, PLAIN)
def test_double_braces_around_a_resolving_reference_escape_it(name: str, around: str) -> None:
    result = interpolate(f"{around}{{{{{name}}}}}{around}", {name: 42})
    assert result.text == f"{around}{{{name}}}{around}"
    assert result.used == ()


@pytest.mark.parametrize(
    "text",
    [
        '{"a": {"b": 1}, "c": [1, 2, {"d": null}]}',
        r"\frac{a}{b^{2}} + \sum_{i=0}^{n} x_{i}",
        "f'{value!r:>10}' and f\"{x + 1}\" and {x: y for x in z}",
        "{1, 2, 3} and set() and {} and {{}} and }{ and {{{ and }}}",
        "def f(): return {'key': value}",
        "unbalanced { brace and another } one {",
        "{df_sales()} {df_sales + 1} { df_sales } {df_sales[0:2]} {df_sales['x'}",
        "{model.coef_.__class__} {model._hidden} {__builtins__} {model.broken}",
    ],
)
def test_non_reference_braces_are_kept_as_typed(text: str) -> None:
    assert interpolate(text, NAMESPACE).text == text


def test_reference_paths_resolve() -> None:
    text = (
        "{df_sales} {d[\"k\"]} {d['k']} {items[0]} {items[-1]} {model.coef_[1]} {_} {_12} {Out[12]}"
    )
    result = interpolate(text, NAMESPACE)
    assert (
        result.text == "SALES dict value dict value first second -1.25 last output output 12 out 12"
    )
    assert result.used[0] == "df_sales"
    assert "Out[12]" in result.used


def test_dunder_and_private_attributes_are_refused() -> None:
    assert parse_reference("obj.__class__") is None
    assert parse_reference("model._hidden") is None
    assert parse_reference("__builtins__") is None
    assert parse_reference("_") == ("_", ())
    assert parse_reference("__") == ("__", ())
    assert interpolate("{model.__class__}", NAMESPACE).text == "{model.__class__}"
    # A dict key is data, not an attribute: looking it up runs no attribute machinery.
    assert lookup('d["_private"]', NAMESPACE) == "underscore key"


def test_render_is_applied_and_used_lists_each_reference_once() -> None:
    result = interpolate("{items} and {items} and {none}", NAMESPACE, render=repr)
    assert result.text == "['first', 'second'] and ['first', 'second'] and None"
    assert result.used == ("items", "none")


def test_double_braces_around_an_unknown_name_stay_doubled() -> None:
    assert interpolate("{{nothing}} {{df_sales}}", NAMESPACE).text == "{{nothing}} {df_sales}"


def test_a_failing_lookup_does_not_resolve() -> None:
    assert interpolate("{items[5]} {d['missing']} {model.broken}", NAMESPACE).used == ()


def test_strict_mode_names_the_reference_and_suggests_close_names() -> None:
    with pytest.raises(UnknownReference) as caught:
        interpolate("total of {df_sale}", NAMESPACE, strict=True)
    assert str(caught.value) == "df_sale is not defined; did you mean df_sales?"
    assert caught.value.name == "df_sale"
    assert "\n" not in str(caught.value)


def test_strict_mode_leaves_non_references_alone() -> None:
    text = '{"json": true} \\frac{1}{2}'
    assert interpolate(text, NAMESPACE, strict=True).text == text


def test_suggestions_follow_the_failing_segment() -> None:
    assert suggest("model.coeff_", NAMESPACE) == ("model.coef_",)
    assert suggest("d['kk']", NAMESPACE) == ("d['k']",)
    assert suggest("zzzz", NAMESPACE) == ()


def test_resolve_raises_unknown_reference_as_a_value_error() -> None:
    assert resolve("items[1]", NAMESPACE) == "second"
    with pytest.raises(ValueError, match=r"nothing_here is not defined$"):
        resolve("nothing_here", NAMESPACE)

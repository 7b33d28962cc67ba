"""Reference paths at their edges: what parses, what is suggested, and what a failure says."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from step_magic.context.interpolate import interpolate, parse_reference, suggest
from step_magic.core.errors import InputError

# --- parse_reference: dunder roots, item segments --------------------------------------------


@pytest.mark.parametrize("name", ["_", "__", "___", "____"])
def test_underscore_only_roots_up_to_four_long_are_references(name: str) -> None:
    assert parse_reference(name) == (name, ())


@pytest.mark.parametrize("name", ["__x__", "__all__", "__builtins__"])
def test_a_dunder_root_of_five_or_more_characters_is_refused(name: str) -> None:
    assert parse_reference(name) is None


def test_quoted_keys_and_numeric_indexes_parse_as_item_segments() -> None:
    assert parse_reference("d[\"train\"]['x'].shape[-1][0]") == (
        "d",
        (("item", "train"), ("item", "x"), ("attr", "shape"), ("item", -1), ("item", 0)),
    )


# --- suggest: public names, up to three, nested paths rendered as typed ----------------------


def test_an_unknown_root_with_lookups_is_matched_on_its_root_name() -> None:
    assert suggest("dff.columns['price']", {"df": 1}) == ("df",)


def test_private_names_of_the_namespace_are_never_suggested() -> None:
    assert suggest("secret", {"_secret": 1, "_secrets": 2}) == ()


def test_private_and_dunder_attributes_are_never_suggested() -> None:
    conf = SimpleNamespace(_token="t", visible=1)
    assert suggest("conf.token", {"conf": conf}) == ()
    assert suggest("conf.hash", {"conf": conf}) == ()


def test_at_most_three_close_names_are_suggested_closest_first() -> None:
    namespace = {"price_eur": 1, "price_2": 2, "prices": 3, "price": 4}
    assert suggest("pric", namespace) == ("price", "prices", "price_2")


def test_names_less_than_sixty_percent_alike_are_not_suggested() -> None:
    # "sales" and "sa" are 2*2/7 = 57 % alike; "sales" and "sal" are 75 % alike
    assert suggest("sales", {"sa": 1}) == ()
    assert suggest("sales", {"sal": 1}) == ("sal",)


def test_a_nested_attribute_path_suggests_the_full_path_of_the_failing_step() -> None:
    config = SimpleNamespace(paths=SimpleNamespace(train="t", test="u"))
    assert suggest("config.paths.trian", {"config": config}) == ("config.paths.train",)


def test_a_nested_item_path_renders_keys_quoted_and_indexes_bare() -> None:
    runs = [{"metrics": {"loss": 0.1, "accuracy": 0.9}}]
    assert suggest("runs[0]['metrics']['los']", {"runs": runs}) == ("runs[0]['metrics']['loss']",)


# --- interpolate: a value that cannot be shown as text -----------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_a_value_whose_str_fails_names_the_reference_its_type_and_the_error() -> None:
    with pytest.raises(InputError) as caught:
        interpolate("look at {thing}", {"thing": Unprintable()})
    assert str(caught.value) == (
        "{thing} cannot be shown as text: Unprintable raised RuntimeError; "
        "pass it with --with, or fix its __str__"
    )

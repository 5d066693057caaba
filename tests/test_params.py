"""Parameter blocks: unknown keys and wrong types are named, ints pass where floats are expected."""

import pytest

from debatch.params import merge_params

DEFAULTS = {"size": 32, "scale": 1.0, "augment": True, "name": "x", "cap": None, "limit": 10}


def test_defaults_fill_missing_keys_and_ints_are_valid_floats():
    merged = merge_params("crops", DEFAULTS, {"scale": 2})
    assert merged == {**DEFAULTS, "scale": 2}


@pytest.mark.parametrize("params, message", [
    ({"sizes": 3}, r"unknown crops parameter\(s\) \['sizes'\]"),
    ({"size": "32"}, "crops.size must be of type int, not '32'"),
    ({"size": 3.5}, "crops.size must be of type int"),
    ({"augment": 1}, "crops.augment must be of type bool"),
    ({"scale": True}, "crops.scale must be of type float"),
    ({"limit": None}, "crops.limit must be of type int"),
])
def test_bad_values_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        merge_params("crops", DEFAULTS, params)


def test_none_accepted_where_it_means_off():
    assert merge_params("crops", DEFAULTS, {"cap": 5})["cap"] == 5
    assert merge_params("crops", DEFAULTS, {"limit": None}, nullable=("limit",))["limit"] is None

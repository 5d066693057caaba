"""Checking a stage's parameter block against its DEFAULTS: one source of truth for keys and types."""

from __future__ import annotations


def _type_ok(default, value) -> bool:
    if default is None:  # optional settings: None means "off", anything else is checked by the stage
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def merge_params(stage: str, defaults: dict, params: dict | None, nullable: tuple = ()) -> dict:
    """``params`` over ``defaults``; an unknown key or a value of the wrong type is a ValueError
    naming ``stage.key``, so a config typo never silently falls back to a default.

    Keys whose default is None, and those in ``nullable``, also accept None ("off" / "all").
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {stage} parameter(s) {unknown}; known: {sorted(defaults)}")
    for key, value in params.items():
        if value is None and key in nullable:
            continue
        if not _type_ok(defaults[key], value):
            raise ValueError(f"{stage}.{key} must be of type {type(defaults[key]).__name__}, "
                             f"not {value!r}")
    return {**defaults, **params}

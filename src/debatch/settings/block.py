"""The ``Block``, one config block's defaults, nullable keys and checks, and the checks a block
is built from. ``Block.merge`` lays a user's block over the defaults and raises a ValueError
naming ``block.key`` for an unknown key, a value of the wrong type or an impossible value, so a
config typo never silently falls back to a default."""

from __future__ import annotations

from collections.abc import Callable, Iterable

Check = Callable[[dict, str], None]


def check_choice(name: str, value, allowed: Iterable) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_ok(default, value) -> bool:
    if default is None:  # optional settings: None means "off", anything else is checked below
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return is_number(value)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


class Block:
    """One config block: defaults (nested blocks for dict-valued keys), nullable keys, checks.

    ``checks`` run on the merged block in order; each raises a ValueError naming the key, and
    may normalise a value in place (e.g. sort a list) so every caller sees the same settings.
    """

    def __init__(
        self,
        name: str,
        defaults: dict,
        *,
        nullable: Iterable[str] = (),
        checks: Iterable[Check] = (),
    ):
        self.name, self.nullable, self.checks = name, set(nullable), list(checks)
        self.children = {key: value for key, value in defaults.items() if isinstance(value, Block)}
        self.defaults = {
            key: value.defaults if isinstance(value, Block) else value
            for key, value in defaults.items()
        }

    def merge(self, params: dict | None) -> dict:
        """``params`` over the defaults, every key and value checked (see the module docstring)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown {self.name} parameter(s) {unknown}; known: {sorted(self.defaults)}"
            )
        for key, value in params.items():
            if key in self.children or (value is None and key in self.nullable):
                continue
            if not _type_ok(self.defaults[key], value):
                raise ValueError(
                    f"{self.name}.{key} must be of type "
                    f"{type(self.defaults[key]).__name__}, not {value!r}"
                )
        merged = {**self.defaults, **params}
        for key, child in self.children.items():
            if merged[key] is not None and not isinstance(merged[key], dict):
                raise ValueError(f"{child.name} must be a block of settings, not {merged[key]!r}")
            merged[key] = child.merge(merged[key])
        for check in self.checks:
            check(merged, self.name)
        return merged


def rule(test: Callable, rule: str, *keys: str, nullable: bool = True) -> Check:
    """A check that every key's value passes ``test``; ``rule`` completes "must be ..."."""

    def check(merged: dict, name: str) -> None:
        for key in keys:
            value = merged[key]
            if value is None and nullable:
                continue
            if not (is_number(value) and test(value)):
                raise ValueError(f"{name}.{key} must be {rule}, not {value!r}")

    return check


def at_least(low: float, *keys: str) -> Check:
    return rule(lambda v: v >= low, f">= {low}", *keys)


def above(low: float, *keys: str) -> Check:
    return rule(lambda v: v > low, f"> {low}", *keys)


def between(low: float, high: float, *keys: str, open_high: bool = False) -> Check:
    test = (lambda v: low <= v < high) if open_high else (lambda v: low <= v <= high)
    return rule(test, f"in [{low}, {high}{')' if open_high else ']'}", *keys)


def number_or_null(*keys: str, positive: bool = False) -> Check:
    return rule(
        (lambda v: v > 0) if positive else (lambda v: True),
        f"a number{' > 0' if positive else ''} or null",
        *keys,
    )


def one_of(allowed: Iterable, *keys: str) -> Check:
    allowed = tuple(allowed)

    def check(merged: dict, name: str) -> None:
        for key in keys:
            check_choice(f"{name}.{key}", merged[key], allowed)

    return check


def each_one_of(allowed: Iterable, key: str, noun: str) -> Check:
    allowed = tuple(allowed)

    def check(merged: dict, name: str) -> None:
        bad = sorted(set(merged[key]) - set(allowed))
        if bad:
            raise ValueError(f"unknown {noun}(s) {bad} in {name}.{key}; known: {list(allowed)}")

    return check


def ordered(low_key: str, high_key: str) -> Check:
    def check(merged: dict, name: str) -> None:
        if not merged[low_key] < merged[high_key]:
            raise ValueError(
                f"{name}.{low_key} ({merged[low_key]}) must be below "
                f"{high_key} ({merged[high_key]})"
            )

    return check

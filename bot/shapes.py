"""The shape a chat platform's JSON must have before a framework or a handler indexes into it.

Slack and Teams payloads are signed, so they are trusted as to who sent them, not as to their
shape: bolt, botbuilder and our handlers read `body["container"]["channel_id"]` and the like
without checking, and a validly signed payload of the wrong shape raised inside them (a 500, an
ERROR traceback, or a turn that fails after the gate). A `Shape` states what each key must hold.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Shape", "shape_problem"]

#: key -> (required, allowed types, nested shape). A nested shape of a list applies to each item;
#: the key "*" stands for every key of a dict (Slack's state.values[block][action]).
Shape = dict[str, tuple[bool, tuple[type, ...], Any]]


def shape_problem(value: dict[str, Any], shape: Shape, where: str = "") -> str | None:
    """The first key of `value` that does not fit `shape`, or None."""
    for key, (required, types, inner) in shape.items():
        items = value.items() if key == "*" else [(key, value[key])] if key in value else []
        if required and not items:
            return f"{where}{key} is missing"
        for name, item in items:
            if isinstance(item, bool) and bool not in types:
                return f"{where}{name} has the wrong type"
            if not isinstance(item, types):
                return f"{where}{name} has the wrong type"
            if inner is None or item is None:
                continue
            children = item if isinstance(item, list) else [item]
            for n, child in enumerate(children):
                if not isinstance(child, dict):
                    return f"{where}{name} holds a {type(child).__name__}, not an object"
                label = f"{where}{name}[{n}]." if isinstance(item, list) else f"{where}{name}."
                if (problem := shape_problem(child, inner, label)) is not None:
                    return problem
    return None

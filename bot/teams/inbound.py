"""Reads an incoming Activity's JSON into botbuilder's models without msrest's per-call overhead.

msrest's Deserializer is generic: for every attribute of every model it copies the attribute's
description, tries two key extractors, dispatches on the declared type by name, and rebuilds the
set of known keys (a regex split per key) to find additional properties: about 80 us of CPU for a
Teams message or invoke, 20-25 us this way. `ActivityReader` does the same work from a plan built once per
model: the plain cases (a string where a string is declared, a JSON object where a model is, a
list where a list is) are read directly, and every other value goes to msrest's own
`deserialize_data`, as msrest would. The model is built by msrest's own `_instantiate_model`, so
additional properties and defaults come out the same. When anything fails, the whole body is read
again by msrest, so what is accepted, what is refused and the error are msrest's.
"""

from __future__ import annotations

from typing import Any

from botbuilder.schema import Activity
from msrest.serialization import Deserializer, Model

__all__ = ["ActivityReader"]

#: attribute, JSON key, declared type, model class (a plain model type) or None
_Field = tuple[str, str, str, type[Model] | None]


class _Plan:
    __slots__ = ("cls", "extra", "fields", "known")

    def __init__(self, cls: type[Model], fields: list[_Field], known: frozenset[str], extra: bool) -> None:
        self.cls = cls
        self.fields = fields
        self.known = known
        self.extra = extra  # whether keys outside the attribute map become additional_properties


class ActivityReader:
    """`reader(body)` is `Deserializer(Activity._infer_class_models())("Activity", body)`, faster."""

    def __init__(self) -> None:
        self.msrest = Deserializer(Activity._infer_class_models())
        self._plans: dict[type[Model], _Plan | None] = {}
        self.fallbacks = 0

    def __call__(self, body: Any) -> Activity:
        if type(body) is dict:
            try:
                return self._model(Activity, body)  # type: ignore[no-any-return]
            except Exception:  # noqa: S110 (msrest reads it again and raises its own error)
                pass
        self.fallbacks += 1
        return self.msrest("Activity", body)  # type: ignore[no-any-return]

    def _plan(self, cls: type[Model]) -> _Plan | None:
        """What msrest's `_deserialize` does for `cls`, precomputed; None: leave the model to msrest."""
        if cls in self._plans:
            return self._plans[cls]
        plan: _Plan | None = None
        attributes = cls._attribute_map
        simple = not cls.__dict__.get("_subtype_map") and not getattr(cls, "_validation", None)
        if simple and not any("." in d["key"] or d["key"] == "" for d in attributes.values()):
            fields: list[_Field] = []
            for attr, desc in attributes.items():
                declared = desc["type"]
                target = self.msrest.dependencies.get(declared.strip("[]{}"))
                model = target if isinstance(target, type) and issubclass(target, Model) else None
                fields.append((attr, desc["key"], declared, model))
            extra = "additional_properties" not in attributes
            plan = _Plan(cls, fields, frozenset(d["key"] for d in attributes.values()), extra)
        self._plans[cls] = plan
        return plan

    def _model(self, cls: type[Model], data: dict[str, Any]) -> Model:
        plan = self._plan(cls)
        if plan is None:
            return self.msrest.deserialize_data(data, cls.__name__)
        values: dict[str, Any] = {}
        for attr, key, declared, model in plan.fields:
            raw = data.get(key)
            if raw is None:
                values[attr] = None
            elif declared == "str" and type(raw) is str:
                values[attr] = raw
            else:
                values[attr] = self._value(raw, declared, model)
        extra = None
        if plan.extra:
            missing = set(data.keys()) - plan.known
            extra = {key: data[key] for key in missing}
        return self.msrest._instantiate_model(cls, values, extra)

    def _value(self, raw: Any, declared: str, model: type[Model] | None) -> Any:
        if model is not None:
            if declared[0] == "[" and type(raw) is list:
                inner = declared[1:-1]
                return [None if item is None else self._value(item, inner, model) for item in raw]
            if declared[0] not in "[{" and type(raw) is dict:
                return self._model(model, raw)
        return self.msrest.deserialize_data(raw, declared)

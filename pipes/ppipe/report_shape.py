"""The check that a report read back has the shape ``report.schema.json`` gives it, with one line saying where not.

ppipe reads reports back (``ppipe report merge``, :func:`ppipe.load_report`,
an ``--on slurm`` task's), and anyone may have edited, cut or written them.
The JSON Schema shipped beside this module is the one description of their
shape; this reads it and checks a report against it before anything is
taken from it, so that a report of the wrong shape is refused with the first
wrong field named (``stages[0].command is missing``, ``exit_status is 256,
not an exit status (0 to 255)``) rather than failing half-way.

It implements what that file uses of JSON Schema, no more: ``$ref`` within
it, ``anyOf``, ``enum``, ``type``, ``minimum``/``maximum``, ``pattern``,
``required``, ``properties``, ``additionalProperties`` and ``items``. (The
tests check every report the suite writes with the ``jsonschema`` package
too; it agrees but for one thing: a whole number written ``3.0`` is refused
here, where JSON Schema takes it for an integer.) Before that, numbers
anywhere are checked finite: JSON has no NaN or Infinity, and a report
holding one could not be written back as JSON.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ReportShapeError", "check_report", "schema", "shown"]

#: What a value of each JSON type is called in a message, where the schema gives no ``title``.
_CALLED = {
    "string": "a string",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


class ReportShapeError(ValueError):
    """A report that does not have the shape of the schema; the message says where."""


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the report (``report.schema.json``, shipped in the package)."""
    with open(os.path.join(os.path.dirname(__file__), "report.schema.json"), encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def check_report(report: object) -> None:
    """Raises :class:`ReportShapeError` unless ``report`` has the schema's shape (its ``schema`` field aside:
    the caller checks that first, to say which version it is)."""
    _finite(report)
    _check(report, schema(), "")


def _finite(value: object) -> None:
    """Refuses NaN and infinities anywhere in ``value``, in fields the schema knows or not."""
    pending: list[tuple[object, str]] = [(value, "")]
    while pending:
        item, where = pending.pop()
        if isinstance(item, Mapping):
            pending.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            pending.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ReportShapeError(f"{where or 'it'} is {item}, which JSON does not allow")


def _resolved(rule: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in rule:
        rule = schema()["$defs"][rule["$ref"].removeprefix("#/$defs/")]
    return rule


def _check(value: object, rule: Mapping[str, Any], where: str) -> None:
    rule = _resolved(rule)
    if "anyOf" in rule:
        errors = []
        for branch in rule["anyOf"]:
            try:
                _check(value, branch, where)
            except ReportShapeError as error:
                errors.append(error)
            else:
                return
        if "title" in rule:
            raise _wrong(value, where, rule)
        raise errors[0]  # the first branch is the one meant; a second is its null
    kind = rule.get("type")
    if (kind is not None and not _is(value, kind)) or ("enum" in rule and value not in rule["enum"]):
        raise _wrong(value, where, rule)
    if isinstance(value, (int, float)) and not (
        rule.get("minimum", -math.inf) <= value <= rule.get("maximum", math.inf)
    ):
        raise _wrong(value, where, rule)
    if isinstance(value, str) and "pattern" in rule and not re.search(rule["pattern"], value):
        raise _wrong(value, where, rule)
    if isinstance(value, list) and "items" in rule:
        for i, item in enumerate(value):
            _check(item, rule["items"], f"{where}[{i}]")
    if isinstance(value, Mapping):
        prefix = f"{where}." if where else ""
        for name in rule.get("required", ()):
            if name not in value:
                raise ReportShapeError(f"{prefix}{name} is missing")
        known = rule.get("properties", {})
        for name, item in value.items():
            if name in known or "additionalProperties" in rule:
                _check(item, known.get(name, rule.get("additionalProperties")), prefix + str(name))


def _is(value: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    types = {"string": str, "boolean": bool, "array": list, "object": Mapping, "null": type(None)}
    return isinstance(value, types[kind])


def _wrong(value: object, where: str, rule: Mapping[str, Any]) -> ReportShapeError:
    expected = rule.get("title") or _CALLED.get(rule.get("type", ""), "one of " + json.dumps(rule.get("enum")))
    return ReportShapeError(f"{where or 'the report'} is {shown(value)}, not {expected}")


def shown(value: object) -> str:
    """The value as JSON, cut to 40 characters (a huge number is shown in short)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e18:
        return f"{float(value):.3g}" if abs(value) < 1e300 else "a number of over 300 digits"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."

"""The shape of a ``ppipe-report/2`` report, and the check that a report read back has it.

ppipe writes every report itself (:mod:`ppipe.cli.report`), but reads some
back: ``ppipe report merge`` takes the reports of a job array's tasks, which
anyone may have edited, cut or written. :func:`check_report` compares one
with the fields the documentation describes (``docs/report.md``) before
anything is read from it, so that a report of the wrong shape is refused
with one line naming the field rather than failing half-way.

What is checked, field by field: that the fields ppipe always writes are
there and of their type; that those it writes only sometimes (``host``,
``task``, a merged report's ``array_tasks``...) are of their type when
present (fields unknown here are let through: fields may be added); that
exit statuses are whole numbers from 0 to 255, counts whole numbers from 0,
verdicts one of :class:`~ppipe.results.Verdict`'s; and that no number
anywhere is NaN or infinite, nor so large that arithmetic on times would
overflow (JSON has no NaN or Infinity, and a report holding one could not
be written back as JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import TypeGuard

from ppipe.results import Verdict

__all__ = ["LARGEST_NUMBER", "ReportShapeError", "check_report"]

#: No time, duration or ratio in a report comes near this; past it, a difference of two could overflow.
LARGEST_NUMBER = 1e18
_VERDICTS = frozenset(v.value for v in Verdict)

#: Checks one value at a path (``shards[0].attempts[1].exit_status``); raises :class:`ReportShapeError`.
Kind = Callable[[object, str], None]


class ReportShapeError(ValueError):
    """A report that does not have the shape of a ``ppipe-report/2`` report; the message says where."""


def check_report(report: object) -> None:
    """Raises :class:`ReportShapeError` unless ``report`` has the shape of a ``ppipe-report/2`` report.

    The message names the first field found wrong and what it should hold
    (``stages[0].command is missing``, ``exit_status is 256, not an exit
    status (0 to 255)``). The ``schema`` field itself is the caller's to
    check first. Nesting too deep for Python's recursion is refused too.
    """
    try:
        _finite(report)
        _REPORT(report, "the report")
    except RecursionError:
        raise ReportShapeError("it is nested too deeply") from None


def _finite(value: object) -> None:
    """Refuses NaN and infinities anywhere in ``value``, in fields this module knows or not."""
    pending: list[tuple[object, str]] = [(value, "")]
    while pending:
        item, where = pending.pop()
        if isinstance(item, Mapping):
            pending.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            pending.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ReportShapeError(f"{where or 'it'} is {item}, which JSON does not allow")


def _shown(value: object) -> str:
    """The value as JSON, cut to 40 characters (a number past that is shown in short)."""
    if _is_int(value) and abs(value) > LARGEST_NUMBER:
        return f"{float(value):.3g}" if abs(value) < 1e300 else "a number of over 300 digits"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong(value: object, where: str, expected: str) -> ReportShapeError:
    return ReportShapeError(f"{where} is {_shown(value)}, not {expected}")


# ---------------------------------------------------------------- kinds of value


def _simple(test: Callable[[object], bool], expected: str) -> Kind:
    def check(value: object, where: str) -> None:
        if not test(value):
            raise _wrong(value, where, expected)

    return check


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object, most: float = math.inf) -> bool:
    return _is_int(value) and 0 <= value <= most


def _is_number(value: object) -> bool:
    """A number of seconds or a ratio: finite, and far from overflowing when two are subtracted."""
    if isinstance(value, float):
        return abs(value) <= LARGEST_NUMBER
    return _is_int(value) and abs(value) <= LARGEST_NUMBER


def _optional(kind: Kind) -> Kind:
    def check(value: object, where: str) -> None:
        if value is not None:
            kind(value, where)

    return check


def _list_of(kind: Kind) -> Kind:
    def check(value: object, where: str) -> None:
        if not isinstance(value, list):
            raise _wrong(value, where, "a list")
        for i, item in enumerate(value):
            kind(item, f"{where}[{i}]")

    return check


def _object(required: Mapping[str, Kind], optional: Mapping[str, Kind] | None = None) -> Kind:
    """An object with every field of ``required``, and those of ``optional`` when present (null too)."""

    def check(value: object, where: str) -> None:
        if not isinstance(value, Mapping):
            raise _wrong(value, where, "an object")
        prefix = "" if where == "the report" else f"{where}."
        for name, kind in required.items():
            if name not in value:
                raise ReportShapeError(f"{prefix}{name} is missing")
            kind(value[name], prefix + name)
        for name, kind in (optional or {}).items():
            if name in value:
                _optional(kind)(value[name], prefix + name)

    return check


STRING = _simple(lambda v: isinstance(v, str), "a string")
BOOL = _simple(lambda v: isinstance(v, bool), "true or false")
NUMBER = _simple(_is_number, f"a number up to {LARGEST_NUMBER:g}")
COUNT = _simple(_is_count, "a whole number from 0")
STATUS = _simple(lambda v: _is_count(v, 255), "an exit status (0 to 255)")
VERDICT = _simple(lambda v: isinstance(v, str) and v in _VERDICTS, "a verdict (" + ", ".join(sorted(_VERDICTS)) + ")")
NODE = _simple(lambda v: _is_count(v) or v in ("stdin", "stdout"), 'a stage id, "stdin" or "stdout"')
ANY = _simple(lambda v: True, "anything")
STRINGS = _list_of(STRING)

_STAGE = _object(
    {
        "id": COUNT,
        "command": STRING,
        "verdict": VERDICT,
        "status": _optional(STATUS),
        "signal": _optional(STRING),
        "error": _optional(STRING),
        "stderr_tail": STRINGS,
        "may_fail": BOOL,
    },
    {
        "argv": STRINGS,
        "env": _simple(lambda v: isinstance(v, Mapping) and all(isinstance(x, str) for x in v.values()), "an object"),
        "redirects": _list_of(ANY),
        "pid": COUNT,
        "failed": BOOL,
        "restarts": COUNT,
        **dict.fromkeys(("started_at", "ended_at", "duration", "ratio", "held"), NUMBER),
        **dict.fromkeys(("bytes_in", "lines_in", "bytes_out", "lines_out"), COUNT),
    },
)
_EDGE = _object(
    {"from": NODE, "to": NODE, "counted": BOOL, "bytes": COUNT, "lines": _optional(COUNT)},
    {
        "with_stderr": BOOL,
        "closed_early": BOOL,
        "waited_on_producer": NUMBER,
        "waited_on_consumer": NUMBER,
    },
)
_ATTEMPT = _object(
    {
        "attempt": COUNT,
        "started_at": _optional(NUMBER),
        "ended_at": _optional(NUMBER),
        "exit_status": _optional(STATUS),
        "error": _optional(STRING),
        "timed_out": BOOL,
        "interrupted_by": _optional(STRING),
        "stages": _list_of(_STAGE),
        "edges": _list_of(_EDGE),
    },
    {"pid": COUNT, "bottleneck": COUNT, "host": STRING, "job_id": STRING},
)
_SHARD = _object(
    {
        "task_id": COUNT,
        "tasks": COUNT,
        "pipeline": STRING,
        "verdict": VERDICT,
        "exit_status": _optional(STATUS),
        "attempts": _list_of(_ATTEMPT),
    },
    {
        "task_num": COUNT,
        "failed": BOOL,
        "restarts": COUNT,
        "bytes_in": COUNT,
        "bytes_out": COUNT,
        "lines_out": COUNT,
        "host": STRING,
        "job_id": STRING,
        "error": STRING,
    },
)
_TASK = _object({"task_id": COUNT, "tasks": COUNT}, {"source": STRING, "job_id": STRING})
_ERROR = _object({"message": STRING, "status": STATUS})
_ARRAY_TASK = _object(
    {"task_id": COUNT, "verdict": VERDICT, "exit_status": _optional(STATUS)}, {"reports": COUNT, "end": STRING}
)
_REPORT: Kind = _object(
    {
        "schema": STRING,
        "pipeline": STRING,
        "started_at": _optional(NUMBER),
        "ended_at": _optional(NUMBER),
        "exit_status": STATUS,
        "timed_out": BOOL,
        "interrupted_by": _optional(STRING),
        "error": _optional(_ERROR),
        "stages": _list_of(_STAGE),
        "edges": _list_of(_EDGE),
        "shards": _list_of(_SHARD),
    },
    {
        "ppipe_version": STRING,
        "host": STRING,
        "task": _TASK,
        "duration": NUMBER,
        "bottleneck": COUNT,
        "input_undelivered": COUNT,
        "output_error": STRING,
        "input_error": STRING,
        "array_tasks": _list_of(_ARRAY_TASK),
    },
)

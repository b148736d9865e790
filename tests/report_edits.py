"""Edits of a real report's data, for the tests that feed ppipe reports no run would write.

A report is walked field by field (:func:`paths`), and one field at a time
is changed or deleted (:func:`mutated`), so that every reader of reports
(``report merge``, ``report show``, ``load_report``) meets each kind of
damage in each place.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

#: Where a field is in a report: the keys and list indices leading to it.
FieldPath = tuple[str | int, ...]

#: A value for :func:`mutated` that deletes the field instead.
DELETE = object()

#: Small JSON values of any shape, nested a little: what a damaged field may hold instead.
NESTED_JSON = st.recursive(
    st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


def paths(value: object, at: FieldPath = ()) -> Iterator[FieldPath]:
    """Every field and list item in a report, as the keys leading to it."""
    if at:
        yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*at, index))


def mutated(report: dict[str, Any], at: FieldPath, value: object) -> dict[str, Any]:
    """A copy of ``report`` with the field ``at`` set to ``value`` (deleted for :data:`DELETE`)."""
    changed = copy.deepcopy(report)
    parent: Any = changed
    for key in at[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[at[-1]]
    else:
        parent[at[-1]] = value
    return changed

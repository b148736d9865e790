"""Every type a public signature names can be imported from ``ppipe`` itself.

The public signatures are those of every name ``ppipe`` exports: its
functions, and its classes' fields, methods and properties; and then those
of every class they name, until nothing new is found. A caller writing
``def watch(observer: ppipe.RunObserver, halt: ppipe.Halt)`` should never
have to know which module of ppipe's a type lives in.
"""

from __future__ import annotations

import builtins
import collections.abc
import dataclasses
import enum
import inspect
import types
import typing

import ppipe

#: What annotations may name besides ppipe's exports: the language's and the standard library's typing names.
STANDARD = {**vars(builtins), **vars(collections.abc), **vars(typing)}


def public_members(cls: type) -> list[object]:
    """A class's own public methods and properties (and a class's __init__ when it is not a dataclass's)."""
    members: list[object] = []
    for name, member in vars(cls).items():
        if name.startswith("_") and not (name == "__init__" and not dataclasses.is_dataclass(cls)):
            continue
        if isinstance(member, property):
            members.append(member.fget)
        elif isinstance(member, (classmethod, staticmethod)):
            members.append(member.__func__)
        elif inspect.isfunction(member):
            members.append(member)
    return members


def hints(owner: object) -> dict[str, object]:
    """The annotations of a function or class, evaluated with ppipe's exports and typing's names in reach."""
    module = inspect.getmodule(owner)
    space = {**STANDARD, **vars(module), **{name: getattr(ppipe, name) for name in ppipe.__all__}}
    try:
        return typing.get_type_hints(owner, globalns=space, include_extras=True)
    except NameError as error:
        raise AssertionError(f"{owner!r} names a type ppipe does not export: {error}") from None


def classes_in(annotation: object) -> list[type]:
    """The classes an evaluated annotation is made of (``X | None``, ``tuple[Y, ...]``, ``Unpack[Z]``...)."""
    if isinstance(annotation, typing.TypeVar) or annotation in (None, type(None), Ellipsis):
        return []
    origin = typing.get_origin(annotation)
    found = [annotation if origin is None else origin]  # a generic of ppipe's (StreamedRun[bytes]) names its class
    if isinstance(annotation, types.UnionType):
        found = []
    for argument in typing.get_args(annotation):
        found += classes_in(argument) if not isinstance(argument, (str, int, bytes, enum.Enum)) else []
    return [cls for cls in found if isinstance(cls, type)]


def test_every_type_in_a_public_signature_is_exported() -> None:
    todo: list[object] = [getattr(ppipe, name) for name in ppipe.__all__ if name != "__version__"]
    seen: set[int] = set()
    missing: dict[str, str] = {}
    while todo:
        owner = todo.pop()
        if id(owner) in seen or not (inspect.isfunction(owner) or inspect.isclass(owner)):
            continue
        seen.add(id(owner))
        if inspect.isclass(owner) and not issubclass(owner, enum.Enum):
            todo += public_members(owner)
        for annotation in hints(owner).values():
            for cls in classes_in(annotation):
                if cls.__module__.split(".")[0] != "ppipe":
                    continue
                if getattr(ppipe, cls.__name__, None) is not cls:
                    missing[cls.__name__] = f"{cls.__module__} (in {getattr(owner, '__qualname__', owner)})"
                todo.append(cls)
    assert not missing, f"types in public signatures that `import ppipe` does not give: {missing}"


def test_the_check_sees_through_unions_containers_and_unpacked_keywords() -> None:
    assert classes_in(typing.Optional[ppipe.Graph]) == [ppipe.Graph]  # noqa: UP045 (the old spelling, on purpose)
    assert classes_in(tuple[ppipe.StageResult, ...]) == [tuple, ppipe.StageResult]
    assert ppipe.StreamedRun in classes_in(ppipe.StreamedRun[bytes] | ppipe.StreamedRun[str])
    assert ppipe.RunObserver in {cls for hint in hints(ppipe.RunKeywords).values() for cls in classes_in(hint)}
    unpacked = hints(ppipe.run)["keywords"]
    assert classes_in(unpacked) == [ppipe.RunKeywords]

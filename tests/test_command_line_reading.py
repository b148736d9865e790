"""One reading of the command line: the console script's own and typer's end alike, in every spelling.

The console script reads the command line itself (:func:`ppipe.cli.entry._read`)
and hands typer only what it does not run. Both are called here in-process on
the same argv, the run itself stubbed out: they must build the same Config, or
print the same message with the same status. Options are spelled every way
click reads them (``--x=v``, ``--x v``, ``-jv``, bundled ``-q0j v``), values
start with dashes, options repeat, ``--`` ends them, and the pipeline stands
anywhere among them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ppipe.cli import command
from ppipe.cli import options as declaration
from ppipe.cli.config import Config
from ppipe.cli.entry import _main, _read, _with_typer
from ppipe.cli.option_table import FLAGS, VALUED


@dataclass(frozen=True)
class Outcome:
    status: int
    stderr: str
    stdout: str
    configs: tuple[Config, ...]  # what would have run


@contextlib.contextmanager
def runs_stubbed(seen: list[Config]) -> Iterator[None]:
    """The run replaced by noting its Config: both readers call run_command, typer's by its own import."""

    def note(config: Config) -> int:
        seen.append(config)
        return 0

    originals = command.run_command, declaration.run_command
    command.run_command = declaration.run_command = note
    try:
        yield
    finally:
        command.run_command, declaration.run_command = originals


def outcome(reader: Callable[[list[str]], int], argv: list[str]) -> Outcome:
    seen: list[Config] = []
    err, out = io.StringIO(), io.StringIO()
    with runs_stubbed(seen), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = reader(argv)
        except SystemExit as end:
            status = end.code  # type: ignore[assignment]
    return Outcome(int(status or 0), err.getvalue(), out.getvalue(), tuple(seen))


VALUES = st.one_of(
    st.sampled_from(["1", "0", "2.5", "-1", "-", "--", "- ", "-x y", "-q", "--quiet", "=4", "", "never", "64k", "x"]),
    st.text(alphabet="-= |aq01.", max_size=5),
)
PIPELINES = st.sampled_from(["true", "seq 3 | wc -l", "-", "-grep x | wc -l", "-x", "a=b", "-- x", "--quiet"])


@dataclass(frozen=True)
class Given:
    """One option as the user meant it: its name (the spelling the table gives) and its value (None: a flag)."""

    name: str
    value: str | None


def spellings(item: Given, style: int) -> list[str]:
    """The words for one option in one of the ways click reads it."""
    if item.value is None:
        return [item.name]
    if item.name.startswith("--"):
        return [f"{item.name}={item.value}"] if style % 2 else [item.name, item.value]
    if style % 2 and item.value:  # -j4; an empty value must be a word of its own
        return [item.name + item.value]
    return [item.name, item.value]


SHORT_FLAGS = "".join(name[1] for name in FLAGS if len(name) == 2)


def bundled(words: list[list[str]]) -> list[list[str]]:
    """Short flags run into the option after them, as click reads ``-q0j 4``: ``-q``, ``-0``, ``-j 4``."""
    out: list[list[str]] = []
    for group in words:
        flags = out[-1][0] if out and len(out[-1]) == 1 else ""
        short = group[0].startswith("-") and not group[0].startswith("--") and len(group[0]) >= 2
        if flags[:1] == "-" and set(flags[1:]) <= set(SHORT_FLAGS) and flags[1:] and short:
            out[-1] = [flags + group[0][1:], *group[1:]]
        else:
            out.append(group)
    return out


OPTIONS = st.one_of(
    st.sampled_from(sorted(FLAGS)).map(lambda name: Given(name, None)),
    st.builds(Given, st.sampled_from(sorted(VALUED)), VALUES),
)


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[list[str], list[str], list[str]]:
    """(the plainest spelling, another spelling of the same line, what typer is given for that other spelling)."""
    items = draw(st.lists(OPTIONS, max_size=5))
    pipeline = draw(PIPELINES)
    styles = draw(st.lists(st.integers(0, 1), min_size=len(items), max_size=len(items)))
    plain = [spellings(item, 0) for item in items]
    other = [spellings(item, style) for item, style in zip(items, styles, strict=True)]
    if draw(st.booleans()):
        other = bundled(other)
    # A pipeline that is not an option's look-alike may stand anywhere; one starting with a dash ends the line,
    # after ``--`` or, when it has a blank (no option has), bare: then typer is given the ``--``.
    dashed = pipeline.startswith("-") and pipeline != "-"
    marked = dashed and not pipeline.startswith("--") and " " in pipeline and draw(st.booleans())
    at = len(items) if dashed else draw(st.integers(0, len(items)))
    ending = ([pipeline] if marked else ["--", pipeline]) if dashed else []
    before = [] if dashed else [pipeline]

    def line(groups: list[list[str]], for_typer: bool = False) -> list[str]:
        tail = ["--", pipeline] if marked and for_typer else ending
        return [word for group in groups[:at] for word in group] + before + [w for g in groups[at:] for w in g] + tail

    return line(plain), line(other), line(other, for_typer=True)


@settings(max_examples=200, deadline=None)
@given(command_lines())
@example((["--timeout", "- ", "true"], ["--timeout", "- ", "true"], ["--timeout", "- ", "true"]))
@example((["-j", "-x y", "true"], ["-j-x y", "true"], ["-j-x y", "true"]))
def test_every_spelling_reads_alike_and_as_typer_reads_it(line: tuple[list[str], list[str], list[str]]) -> None:
    plain, other, for_typer = line
    expected = outcome(_main, plain)
    assert outcome(_main, other) == expected, (plain, other)
    assert outcome(_with_typer, for_typer) == expected, (plain, for_typer)


WORDS = st.sampled_from(
    [
        *FLAGS,
        *VALUED,
        "--version",
        "-h",
        "--help",
        "--",
        "-",
        "-x",
        "-qx",
        "-q0",
        "-j4",
        "-qj",
        "--bogus",
        "--quiet=1",
        "--timeout=1",
        "--tim",
        "1",
        "-1",
        "never",
        "seq 3 | wc -l",
        "cat f",
        "ls",
        "-grep x",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(alphabet="-= |aq0", max_size=4)), max_size=6))
def test_any_words_end_as_typer_ends_them(argv: list[str]) -> None:
    """Mistakes and help too. A pipeline in several words (``ppipe ls -l``) is ppipe's own message, where typer
    says it got extra arguments or an option it does not know."""
    mine = outcome(_main, argv)
    typers = outcome(_with_typer, _read(argv).argv)
    if mine.stderr.startswith("ppipe: give the pipeline as one quoted argument"):
        assert (typers.status, typers.configs) == (2, ())
        assert typers.stderr.startswith(("ppipe: got unexpected extra argument", "ppipe: no such option: -"))
    else:
        assert mine == typers

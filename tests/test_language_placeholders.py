"""Shard placeholders are put into the parsed words: a value never changes how the text parses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppipe import PipelineSyntaxError, RedirectOp, parse, substitute_placeholders
from ppipe.graph import Graph, Redirect
from ppipe.language.parser import placeholder_values

from helpers import ppipe as run_ppipe

ENV = {"HOME": "/home/u", "V": "{task_id}", "task_id": "from-env", "STAR": "*"}


def shard(text: str, task_id: int, tasks: int = 4, cwd: str | None = None) -> Graph:
    return parse(text, env=ENV, cwd=cwd, placeholders=placeholder_values(task_id, tasks))


def test_placeholder_values() -> None:
    assert placeholder_values(2, 8) == {"task_id": "2", "task_num": "3", "tasks": "8"}


@pytest.mark.parametrize("task_id", range(4))
def test_a_placeholder_before_a_redirection_stays_a_word(task_id: int) -> None:
    stage = shard("echo hi {task_id}>o{task_id}.txt", task_id).stage(1)
    assert stage.argv == ("echo", "hi", str(task_id))
    assert stage.redirects == (Redirect(1, RedirectOp.WRITE, f"o{task_id}.txt"),)


def test_only_digits_written_in_the_text_are_a_descriptor() -> None:
    assert shard("echo 2>e{task_num}", 0).stage(1).redirects == (Redirect(2, RedirectOp.WRITE, "e1"),)
    stage = shard("echo x{tasks}>f", 0).stage(1)
    assert stage.argv == ("echo", "x4") and stage.redirects[0].fd == 1
    with pytest.raises(PipelineSyntaxError):  # '>&' takes 1 or 2 as written, whatever the shard
        shard("echo 2>&{task_num}", 0)


def test_placeholders_in_every_kind_of_word() -> None:
    text = (
        'X={task_num} Y="a {tasks}" cat \'{task_id}\' "{task_id}" \\{task_id} x{task_id}y '
        "> 'out {task_id}' 2>> e{tasks}.log"
    )
    stage = shard(text, 1).stage(1)
    assert stage.env == (("X", "2"), ("Y", "a 4"))
    assert stage.argv == ("cat", "1", "1", "1", "x1y")
    assert stage.redirects == (Redirect(1, RedirectOp.WRITE, "out 1"), Redirect(2, RedirectOp.APPEND, "e4.log"))


def test_never_in_what_a_variable_expanded_to() -> None:
    stage = shard('echo $V "$V" ${task_id} $task_id X{other}', 2).stage(1)
    assert stage.argv == ("echo", "{task_id}", "{task_id}", "from-env", "from-env", "X{other}")
    assert shard("Y=$V env", 2).stage(1).env == (("Y", "{task_id}"),)


def test_substituted_before_globbing(tmp_path: Path) -> None:
    for path in ("part0/a", "part0/b", "part1/c"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text("x")
    assert shard("cat part{task_id}/*", 0, cwd=str(tmp_path)).stage(1).argv == ("cat", "part0/a", "part0/b")
    assert shard("cat part{task_id}/*", 1, cwd=str(tmp_path)).stage(1).argv == ("cat", "part1/c")
    assert shard("cat < part{task_id}/[c]", 1, cwd=str(tmp_path)).stage(1).redirects[0].target == "part1/c"


def test_a_value_is_one_literal_word(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    stage = parse("echo {x} -{x}-", env=ENV, cwd=str(tmp_path), placeholders={"x": "* b"}).stage(1)
    assert stage.argv == ("echo", "* b", "-* b-")


def test_without_values_placeholders_stay_as_written() -> None:
    assert parse("echo {task_id}>f", env=ENV).stage(1).argv == ("echo", "{task_id}")


def test_the_graph_keeps_the_text_as_written() -> None:
    graph = shard("echo {task_id}>o", 3)
    assert graph.text == "echo {task_id}>o" and graph.stage(1).source == "echo {task_id}>o"


def test_substitute_placeholders_still_fills_text_for_display() -> None:
    assert substitute_placeholders("cat p{task_id} > {task_num}-of-{tasks} ${task_id} {x}", 2, 8) == (
        "cat p2 > 3-of-8 ${task_id} {x}"
    )


def test_explain_fork_shows_the_word_and_the_redirection(tmp_path: Path) -> None:
    done = run_ppipe("--explain", "--fork", "4", "echo hi {task_id}>o{task_id}.txt", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert b"argv: ['echo', 'hi', '0']" in done.stdout
    assert b"redirect: > o0.txt" in done.stdout
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the parse never depends on the values

_WORDS_TEXT = (
    "{task_id} {task_num} {tasks} x{task_id} '{tasks}' \\{task_id} > >> < 2> 1> >& 2>&1 | |& { } ; - A= "
    "A={task_id} cat 0 1 2 $V ${task_id}"
)
_WORDS = _WORDS_TEXT.split()
_CHARS = ["{task_id}", "{tasks}", ">", "<", "2", "a", " ", "|", "&", "=", "X", "{", "}"]
_TEXT = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=12).map(" ".join) | st.lists(
    st.sampled_from(_CHARS), min_size=1, max_size=20
).map("".join)


def _shape(text: str, values: dict[str, str] | None) -> object:
    """What the parse decided: the stages' redirections (fd, kind), edges and argv lengths; or the error."""
    try:
        graph = parse(text, env=ENV, placeholders=values)
    except PipelineSyntaxError as error:
        return error.message, error.column
    return ([(len(s.argv), len(s.env), [(r.fd, r.op, r.source_fd) for r in s.redirects]) for s in graph], graph.edges)


@settings(max_examples=400, deadline=None)
@given(_TEXT, st.integers(min_value=0, max_value=12), st.integers(min_value=1, max_value=13))
def test_values_never_change_how_the_text_parses(text: str, task_id: int, tasks: int) -> None:
    assert _shape(text, placeholder_values(task_id, tasks)) == _shape(text, None)

"""The pipeline language under hostile input: deep nesting, huge globs, megabytes of text.

Every input gives a Graph or a PpipeError (status 2 for syntax), never a
RecursionError or an internal error; and big inputs parse in linear time.
The ``timeout`` marks only stop a quadratic regression from hanging the
run: they are minutes, where the inputs take well under a second.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppipe import Graph, PipelineSyntaxError, parse
from ppipe.cli.explain import explain_checked
from ppipe.errors import PpipeError
from ppipe.language.lexer import Lexer
from ppipe.language.parser import MAX_GROUP_DEPTH, placeholder_values

import helpers
from helpers import bash
from helpers import ppipe as run_ppipe

ENV = {"HOME": "/home/u", "NAME": "world", "STAR": "*", "SPACED": " a  b "}


def nested(depth: int) -> str:
    return "{ " * depth + "cat" + " }" * depth


# ---------------------------------------------------------------- nesting


def test_groups_nest_up_to_the_limit() -> None:
    graph = parse(nested(MAX_GROUP_DEPTH), env=ENV)
    assert graph.stage(1).argv == ("cat",)
    assert len(graph.stage(1).branch) == MAX_GROUP_DEPTH


@pytest.mark.parametrize("depth", [MAX_GROUP_DEPTH + 1, 248, 100_000])
def test_deeper_nesting_is_a_syntax_error_naming_the_limit(depth: int) -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse(nested(depth), env=ENV)
    assert caught.value.status == 2
    assert f"groups nest more than {MAX_GROUP_DEPTH} deep" in caught.value.message
    assert caught.value.column == 2 * MAX_GROUP_DEPTH  # the first '{' past the limit


def test_deep_nesting_through_the_cli_is_usage_error_2() -> None:
    done = run_ppipe(nested(248))
    assert done.returncode == 2
    assert b"groups nest more than 100 deep" in done.stderr
    assert b"internal error" not in done.stderr and b"Traceback" not in done.stderr


# ---------------------------------------------------------------- globs


def test_a_glob_of_a_thousand_levels_is_left_literal(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    pattern = "*/" * 1000
    assert parse(f"ls {pattern}", env=ENV, cwd=str(tmp_path)).stage(1).argv == ("ls", pattern)


def test_a_glob_matches_level_by_level_as_bash_does(tmp_path: Path) -> None:
    for path in ("a/b/c", "a/x/c", "d/b/c", ".h/b/c", "a/b/.c"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "link").symlink_to("a")
    for pattern in (
        "*/*/c",
        "*/b/*",
        "*/*/",
        "*/*/*.txt",
        "*/b/.*",
        ".*/*/c",
        "l*/b/c",
        "[ad]/[!x]/c",
        "*/*/*/*/*",
        "a/*",
        "a/*/",
        "nosuch/*",
        "a/?/c",
    ):
        ours = parse(f"ls {pattern}", env=ENV, cwd=str(tmp_path)).stage(1).argv[1:]
        theirs = bash(f"printf '%s\\n' {pattern}", cwd=str(tmp_path)).stdout.decode().splitlines()
        assert list(ours) == theirs, pattern


def test_an_absolute_glob(tmp_path: Path) -> None:
    (tmp_path / "one.log").write_text("x")
    (tmp_path / "two.log").write_text("x")
    argv = parse(f"ls {shlex.quote(str(tmp_path))}/*.log", env=ENV).stage(1).argv
    assert argv == ("ls", f"{tmp_path}/one.log", f"{tmp_path}/two.log")


@pytest.mark.timeout(120)
def test_a_hundred_thousand_open_brackets_are_literal(tmp_path: Path) -> None:
    (tmp_path / "[[").write_text("x")
    brackets = "[" * 100_000
    assert parse(f"echo {brackets}", env=ENV, cwd=str(tmp_path)).stage(1).argv == ("echo", brackets)
    assert parse("echo [[", env=ENV, cwd=str(tmp_path)).stage(1).argv == ("echo", "[[")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pattern", ["*a" * 5000 + "*", "?" * 100_000, "[ab]" * 50_000, "*" * 100_000 + "x"])
def test_huge_patterns_match_or_stay_literal(tmp_path: Path, pattern: str) -> None:
    for name in ("ab", "a" * 200, "x"):
        (tmp_path / name).write_text("x")
    assert parse(f"ls {pattern}", env=ENV, cwd=str(tmp_path)).stage(1).argv[1:] in (("x",), (pattern,))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*a*a*b", ["aaab", "abab"]),
        ("a*b*b", ["abab", "abbb"]),
        ("*[]]*", ["q]x"]),
        ("[!a]*", ["q]x"]),
        ("[^aq]*", []),
        ("[z-a]*", []),  # a reversed range matches nothing
        ("[a-b]?[a-b]b", ["aaab", "abab", "abbb"]),
        ('[ab"]"*', []),  # a quoted ']' does not close the bracket
    ],
)
def test_star_and_bracket_matching_as_bash(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    for name in ("aaab", "abab", "abbb", "q]x"):
        (tmp_path / name).write_text("x")
    ours = list(parse(f"ls {pattern}", env=ENV, cwd=str(tmp_path)).stage(1).argv[1:])
    script = f'shopt -s nullglob; for f in {pattern}; do echo "$f"; done'
    theirs = bash(script, cwd=str(tmp_path)).stdout.decode().splitlines()
    assert theirs == expected
    if expected:
        assert ours == expected
    else:  # no match: left as written (after quote removal), as bash leaves it without nullglob
        assert ours == bash(f"printf '%s\\n' {pattern}", cwd=str(tmp_path)).stdout.decode().splitlines()


# ---------------------------------------------------------------- sizes


@pytest.mark.timeout(300)
def test_a_megabyte_of_words_lexes_and_parses() -> None:
    text = " ".join(["a"] * (512 * 1024))
    assert len(Lexer(text).tokens()) == 512 * 1024
    assert parse(text, env=ENV).stage(1).argv == ("a",) * (512 * 1024)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("word", ["\\a", "'a'", '"a"', "$NAME", "a\\ ", "\"$NAME\"'x'"])
def test_a_word_of_many_pieces_joins_in_one_pass(word: str) -> None:
    text = "echo " + word * 100_000
    single = parse("echo " + word, env=ENV).stage(1).argv[1]
    assert parse(text, env=ENV).stage(1).argv == ("echo", single * 100_000)


@pytest.mark.timeout(300)
def test_many_stages_and_redirections() -> None:
    text = " | ".join(f"cat < in{i} 2>> err{i}" for i in range(20_000))
    graph = parse(text, env=ENV)
    assert len(graph) == 20_000
    assert graph.stage(20_000).redirects[0].target == "in19999"


def test_a_huge_io_number_is_a_syntax_error() -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse("echo " + "1" * 10_000 + ">f", env=ENV)
    assert "cannot be redirected" in caught.value.message and len(caught.value.message) < 200
    assert parse("echo 01>f", env=ENV).stage(1).redirects[0].fd == 1
    assert parse("echo \u0662>f", env=ENV).stage(1).argv == ("echo", "\u0662")  # an Arabic-Indic 2 is a word


# ---------------------------------------------------------------- any text at all

_SHELLISH = st.text(alphabet=" \t\n|&;<>()'\"\\$`{}[]*?!~-=#0123456789abxyz/.:^", max_size=80)
_WORDS_TEXT = (
    "{ } ; | |& < > >> 2> 2>&1 >&2 &> - ! a cat x=1 $NAME ${NAME} $STAR $SPACED ~ ~/x * */ [ ] [!a] [[:alpha:]] ? "
    "'q' \"d\" {task_id} {tasks} \\ #c $ 0> 1> 3> & && || $( ` <( >( ) x<( ("
)
_WORDS = _WORDS_TEXT.split()
_PIECES = st.lists(st.sampled_from([*_WORDS, "\n"]), max_size=40).map(" ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_SHELLISH, _PIECES), st.booleans())
def test_any_text_gives_a_graph_or_a_ppipe_error(tmp_path: Path, text: str, shard: bool) -> None:
    for name in ("a", "ab", ".h"):
        (tmp_path / name).touch()
    (tmp_path / "d").mkdir(exist_ok=True)
    try:
        graph = parse(text, env=ENV, cwd=str(tmp_path), placeholders=placeholder_values(1, 3) if shard else None)
    except PpipeError as error:
        assert error.status == 2
        assert str(error)
        return
    assert isinstance(graph, Graph) and len(graph) >= 1
    assert all(stage.argv for stage in graph)
    explained = explain_checked(graph, env={"PATH": "/usr/bin:/bin"})
    assert explained.status in (0, 126, 127) and explained.text.startswith("pipeline: ")


def test_deep_nesting_still_parses_inside_a_deep_caller() -> None:
    """The limit leaves room for callers: the parser needs a few hundred frames at most."""

    def call_at(depth: int) -> Graph:
        return parse(nested(MAX_GROUP_DEPTH), env=ENV) if depth == 0 else call_at(depth - 1)

    assert len(call_at(300)) == 1


def test_messages_about_huge_words_stay_short() -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse("echo ${" + "a-" * 50_000 + "}", env=ENV)
    assert "parameter expansion" in caught.value.message and len(caught.value.message) < 200


def test_a_syntax_error_in_a_huge_pipeline_quotes_only_around_its_column() -> None:
    text = "echo " + "a " * 50000 + "; ls"
    result = subprocess.run([helpers.PPIPE, text], capture_output=True, timeout=60, env=helpers.ENV)
    assert result.returncode == 2
    assert len(result.stderr) < 1000
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("ppipe: syntax error at column 100006: ';' (a list of commands)")
    assert lines[2].index("^") == lines[1].index(";")  # the caret still points at it

"""The pipeline language: lexing, parsing, expansion, and every rejected form."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppipe import Boundary, PipelineSyntaxError, RedirectOp, parse, substitute_placeholders
from ppipe.graph import Redirect
from ppipe.language.reserved import RESERVED_WORDS

ENV = {"HOME": "/home/u", "NAME": "world", "EMPTY": "", "SPACED": "  a  b ", "STAR": "*.txt"}


def argv(text: str, **kwargs: object) -> list[list[str]]:
    return [list(stage.argv) for stage in parse(text, env=ENV, **kwargs)]  # type: ignore[arg-type]


# ---------------------------------------------------------------- words and quoting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("echo a b", [["echo", "a", "b"]]),
        ("echo 'a | b'", [["echo", "a | b"]]),
        ('echo "a | b"', [["echo", "a | b"]]),
        ("echo a\\ b", [["echo", "a b"]]),
        ("echo \\|", [["echo", "|"]]),
        ("echo '' \"\"", [["echo", "", ""]]),
        ("echo 'it''s'", [["echo", "its"]]),
        ('echo "it\'s"', [["echo", "it's"]]),
        ('echo "a\\"b" "\\$x" "\\\\" "\\n"', [["echo", 'a"b', "$x", "\\", "\\n"]]),
        ("echo 'a\\b'", [["echo", "a\\b"]]),
        ("echo a'b'\"c\"d", [["echo", "abcd"]]),
        ("cut -d, -f1 | grep -E 'x|y'", [["cut", "-d,", "-f1"], ["grep", "-E", "x|y"]]),
        ("awk '{print $1}'", [["awk", "{print $1}"]]),
        ("echo {a,b} {task_id}", [["echo", "{a,b}", "{task_id}"]]),
        ("echo a#b # a comment", [["echo", "a#b"]]),
        ("echo a |\n  wc -l", [["echo", "a"], ["wc", "-l"]]),
        ("echo a \\\n b", [["echo", "a", "b"]]),
        ("echo $", [["echo", "$"]]),
        ('echo a$ "$"', [["echo", "a$", "$"]]),
    ],
)
def test_words(text: str, expected: list[list[str]]) -> None:
    assert argv(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("echo $NAME ${NAME}!", ["echo", "world", "world!"]),
        ('echo "$NAME" "${NAME}x"', ["echo", "world", "worldx"]),
        ("echo $UNSET x", ["echo", "x"]),
        ('echo "$UNSET"', ["echo", ""]),
        ("echo $EMPTY", ["echo"]),
        ("echo $SPACED", ["echo", "a", "b"]),
        ('echo "$SPACED"', ["echo", "  a  b "]),
        ("echo x$SPACED", ["echo", "x", "a", "b"]),
        ("echo '$NAME'", ["echo", "$NAME"]),
        ("echo ~ ~/x a~", ["echo", "/home/u", "/home/u/x", "a~"]),
        ("echo '~' \"~\"", ["echo", "~", "~"]),
        ("echo ~root", ["echo", os.path.expanduser("~root")]),
        ("echo ~nosuchuser_xyz", ["echo", "~nosuchuser_xyz"]),
    ],
)
def test_expansions(text: str, expected: list[str]) -> None:
    assert argv(text) == [expected]


def test_globs_sort_and_fall_back(tmp_path: Path) -> None:
    for name in ("b.txt", "a.txt", ".hidden.txt", "c.log"):
        (tmp_path / name).write_text("x")
    assert argv("ls *.txt", cwd=str(tmp_path)) == [["ls", "a.txt", "b.txt"]]
    assert argv("ls ?.log [ab].txt", cwd=str(tmp_path)) == [["ls", "c.log", "a.txt", "b.txt"]]
    assert argv("ls *.none", cwd=str(tmp_path)) == [["ls", "*.none"]]
    assert argv("ls '*.txt' \\*.txt \"*\".txt", cwd=str(tmp_path)) == [["ls", "*.txt", "*.txt", "*.txt"]]
    assert argv("ls .*.txt", cwd=str(tmp_path)) == [["ls", ".hidden.txt"]]
    assert argv("ls $STAR", cwd=str(tmp_path)) == [["ls", "a.txt", "b.txt"]]  # unquoted expansion globs
    assert argv('ls "$STAR"', cwd=str(tmp_path)) == [["ls", "*.txt"]]


def test_assignments_are_per_stage_and_not_split() -> None:
    graph = parse("A=1 B='x y' C=$SPACED env | D= env", env=ENV)
    assert graph.stage(1).env == (("A", "1"), ("B", "x y"), ("C", "  a  b "))
    assert graph.stage(1).argv == ("env",)
    assert graph.stage(2).env == (("D", ""),)
    assert parse("env A=1", env=ENV).stage(1).argv == ("env", "A=1")  # after the command: an argument
    assert parse("'A=1' env", env=ENV).stage(1).argv == ("A=1", "env")  # quoted: the command


def test_opt_out_marker() -> None:
    graph = parse("cat f | -grep x | - wc -l | -A=1 sort | '-x'", env=ENV)
    assert [s.may_fail for s in graph] == [False, True, True, True, False]
    assert [s.argv[0] for s in graph] == ["cat", "grep", "wc", "sort", "-x"]
    assert graph.stage(4).env == (("A", "1"),)


# ---------------------------------------------------------------- redirections and edges


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c < in", [Redirect(0, RedirectOp.READ, "in")]),
        ("c > out", [Redirect(1, RedirectOp.WRITE, "out")]),
        ("c >out", [Redirect(1, RedirectOp.WRITE, "out")]),
        ("c 1> out", [Redirect(1, RedirectOp.WRITE, "out")]),
        ("c >> out", [Redirect(1, RedirectOp.APPEND, "out")]),
        ("c 2> err", [Redirect(2, RedirectOp.WRITE, "err")]),
        ("c 2>> err", [Redirect(2, RedirectOp.APPEND, "err")]),
        ("c 2>&1", [Redirect(2, RedirectOp.DUP, source_fd=1)]),
        ("c >&2", [Redirect(1, RedirectOp.DUP, source_fd=2)]),
        ("c &> both", [Redirect(1, RedirectOp.WRITE, "both"), Redirect(2, RedirectOp.DUP, source_fd=1)]),
        ("c &>> both", [Redirect(1, RedirectOp.APPEND, "both"), Redirect(2, RedirectOp.DUP, source_fd=1)]),
        ("c > f 2>&1", [Redirect(1, RedirectOp.WRITE, "f"), Redirect(2, RedirectOp.DUP, source_fd=1)]),
        ("c 2>&1 > f", [Redirect(2, RedirectOp.DUP, source_fd=1), Redirect(1, RedirectOp.WRITE, "f")]),
        ("< in c", [Redirect(0, RedirectOp.READ, "in")]),
        (
            "c > 'my file' < ~/in",
            [Redirect(1, RedirectOp.WRITE, "my file"), Redirect(0, RedirectOp.READ, "/home/u/in")],
        ),
        ("c > $NAME.txt", [Redirect(1, RedirectOp.WRITE, "world.txt")]),
    ],
)
def test_redirections(text: str, expected: list[Redirect]) -> None:
    stage = parse(text, env=ENV).stage(1)
    assert stage.argv == ("c",)
    assert list(stage.redirects) == expected


def test_a2_is_a_word_not_a_redirection() -> None:
    stage = parse("echo a2>f", env=ENV).stage(1)
    assert stage.argv == ("echo", "a2")
    assert stage.redirects == (Redirect(1, RedirectOp.WRITE, "f"),)


def test_ambiguous_redirect_is_kept_for_the_stage_to_fail() -> None:
    redirect = parse("c > $SPACED", env=ENV).stage(1).redirects[0]
    assert redirect.target == "$SPACED"
    assert redirect.error == "ambiguous redirect (it expands to 2 words)"


def test_tilde_in_assignment_values() -> None:
    assert parse("X=~/a Y=~/b:~/c Z='~' W=a~ env", env=ENV).stage(1).env == (
        ("X", "/home/u/a"),
        ("Y", "/home/u/b:/home/u/c"),
        ("Z", "~"),
        ("W", "a~"),
    )


def test_posix_classes_and_caret_negation_in_globs(tmp_path: Path) -> None:
    for name in ("Zeta.txt", "alpha.txt", "9.txt"):
        (tmp_path / name).write_text("x")
    assert argv("ls [[:upper:]]* [[:digit:]]* [^Za]*", cwd=str(tmp_path)) == [["ls", "Zeta.txt", "9.txt", "9.txt"]]


def test_edges_are_linear_with_boundaries() -> None:
    graph = parse("a | b |& c", env=ENV)
    assert [(e.source, e.target, e.with_stderr) for e in graph.edges] == [
        (Boundary.STDIN, 1, False),
        (1, 2, False),
        (2, 3, True),
        (3, Boundary.STDOUT, False),
    ]
    assert graph.outputs(2)[0].target == 3
    assert graph.inputs(1)[0].source is Boundary.STDIN


def test_stage_source_text() -> None:
    graph = parse("grep -c x  |  sort -r", env=ENV)
    assert [s.source for s in graph] == ["grep -c x", "sort -r"]


# ---------------------------------------------------------------- rejected forms


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("echo 'abc", 6, "unclosed single quote"),
        ('echo "abc', 6, "unclosed double quote"),
        ("echo ${NAME", 6, "unclosed '${'"),
        ("a || b", 3, "'||'"),
        ("| a", 1, "empty stage"),
        ("a |", 3, "empty stage"),
        ("a | | b", 5, "empty stage"),
        ("a |& | b", 6, "empty stage"),
        ("a >", 4, "needs a file name"),
        ("a > | b", 5, "needs a file name"),
        ("a 2>", 5, "needs a file name"),
        ("a < > f", 5, "needs a file name"),
        ("a ; b", 3, "';'"),
        ("a && b", 3, "'&&'"),
        ("a &", 3, "'&'"),
        ("echo $(ls)", 6, "command substitution"),
        ("echo $((1+1))", 6, "arithmetic"),
        ("echo `ls`", 6, "backticks"),
        ('echo "`ls`"', 7, "backticks"),
        ("(a)", 1, "subshell"),
        ("a | (b)", 5, "subshell"),
        ("cat <<EOF", 5, "here-document"),
        ("cat <<< word", 5, "here-document"),
        ("<(a) b", 1, "cannot be a command's name"),
        ("diff <() b", 6, "empty process substitution"),
        ("diff <(a b", 6, "unclosed process substitution"),
        ("diff <(a ; b) c", 10, "a list of commands"),
        ("cat < >(a)", 7, "written into, not read"),
        ("echo hi > <(a)", 11, "read, not written into"),
        ("diff <(a | ) b", 10, "empty stage"),
        ("cat <(a) )", 10, "a subshell"),
        ("a 3> f", 3, "file descriptor 3"),
        ("a 2>&3", 6, "followed by 1 or 2"),
        ("echo ${A:-x}", 6, "parameter expansion"),
        ("echo $1", 6, "special parameter"),
        ("echo $?", 6, "special parameter"),
        ("echo $'x'", 6, "quoting"),
        ("! grep x", 1, "negate"),
        ("a\nb", 2, "newline"),
        ("", 1, "empty pipeline"),
        ("   ", 1, "empty pipeline"),
        ("> f", 1, "no command"),
        ("A=1", 1, "no command"),
        ("a | A=1 > f", 5, "no command"),
        ("$EMPTY", 1, "expanded to nothing"),
    ],
)
def test_rejected(text: str, column: int, message: str) -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse(text, env=ENV)
    error = caught.value
    assert message in error.message
    assert error.column + 1 == column
    rendered = str(error).splitlines()
    assert rendered[0].startswith(f"syntax error at column {column}: ")
    assert rendered[1] == "  " + text.replace("\n", " ")
    assert rendered[2].index("^") == column + 1  # two spaces of indent, then the caret under the column
    assert error.status == 2


def test_shell_syntax_hint_quotes_the_input() -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse("make && echo ok", env=ENV)
    assert caught.value.hint is not None
    assert "sh -c 'make && echo ok'" in caught.value.hint


def test_operators_inside_quotes_are_arguments() -> None:
    assert argv("echo '&&' ';' '||' '$(x)' '`x`' \"(\" '<<'") == [["echo", "&&", ";", "||", "$(x)", "`x`", "(", "<<"]]


# ---------------------------------------------------------------- placeholders


def test_placeholders_substitute_only_their_names() -> None:
    text = "zcat part-{task_id}.gz | awk '{print $1}' > out/{task_num}-of-{tasks}.tsv ${task_id} {other}"
    assert substitute_placeholders(text, 2, 8) == (
        "zcat part-2.gz | awk '{print $1}' > out/3-of-8.tsv ${task_id} {other}"
    )


def test_placeholders_then_glob(tmp_path: Path) -> None:
    for name in ("part-0-a", "part-0-b", "part-1-a"):
        (tmp_path / name).write_text("x")
    text = substitute_placeholders("cat part-{task_id}-*", 0, 2)
    assert argv(text, cwd=str(tmp_path)) == [["cat", "part-0-a", "part-0-b"]]


# ---------------------------------------------------------------- properties

_words = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    min_size=1,
    max_size=6,
)


@given(_words)
def test_any_words_survive_shlex_join(words: list[str]) -> None:
    """Whatever the words, shlex's quoting of them parses back to exactly them."""
    # Only a command word is read differently: empty, an assignment, the '-' marker, or a reserved word.
    if not words[0] or "=" in words[0] or words[0].startswith("-") or words[0] in {*RESERVED_WORDS, "time"}:
        words = ["cmd", *words]
    assert list(parse(shlex.join(words), env={}).stage(1).argv) == words


@given(st.lists(_words, min_size=1, max_size=4))
def test_any_stages_survive_shlex_join(stages: list[list[str]]) -> None:
    stages = [["cmd", *words] for words in stages]
    text = " | ".join(shlex.join(words) for words in stages)
    assert [list(s.argv) for s in parse(text, env={})] == stages

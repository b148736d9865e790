"""Process substitutions parse into the graph: bash's /dev/fd numbers, stages in text order, edges at descriptors.

No process runs here: these pin what the parser and the builder make of
``<(...)`` and ``>(...)`` (the differential suite checks the same against
bash by running it).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppipe import parse
from ppipe.errors import PipelineSyntaxError
from ppipe.graph import Boundary, Graph
from ppipe.language.lexer import MAX_SUBSTITUTION_DEPTH
from ppipe.language.parser import placeholder_values

from helpers import ENV


def argvs(graph: Graph) -> list[list[str]]:
    return [list(stage.argv) for stage in graph]


def inner_edges(graph: Graph) -> set[tuple[object, object, int, int]]:
    return {(e.source, e.target, e.source_fd, e.target_fd) for e in graph.edges}


def test_the_holder_comes_first_then_its_substitutions_in_text_order() -> None:
    graph = parse("diff <(sort a) <(sort b | uniq)", env=ENV)
    assert argvs(graph) == [["diff", "/dev/fd/63", "/dev/fd/62"], ["sort", "a"], ["sort", "b"], ["uniq"]]
    assert inner_edges(graph) == {
        (Boundary.STDIN, 1, 1, 0),
        (2, 1, 1, 63),
        (3, 4, 1, 0),
        (4, 1, 1, 62),
        (1, Boundary.STDOUT, 1, 0),
    }
    assert [s.reads_stdin_of for s in graph] == [None, 1, 1, None]  # the first stages of each <(...)


def test_descriptors_go_words_first_then_assignments_then_redirections() -> None:
    """bash's order, not the text's: X=<(a) cmd <(b) < <(c) gives b 63, a 62, c 61."""
    graph = parse("X=<(echo a) cat <(echo b) < <(echo c) > >(cat)", env=ENV)
    holder = graph.stage(1)
    assert holder.argv == ("cat", "/dev/fd/63") and holder.env == (("X", "/dev/fd/62"),)
    assert [str(r) for r in holder.redirects] == ["< /dev/fd/61", "> /dev/fd/60"]
    assert [s.argv for s in graph][1:] == [("echo", "a"), ("echo", "b"), ("echo", "c"), ("cat",)]  # text order
    assert inner_edges(graph) >= {(2, 1, 1, 62), (3, 1, 1, 63), (4, 1, 1, 61), (1, 5, 60, 0)}
    assert graph.stage(5).writes_stdout_of == 1


def test_each_command_numbers_its_own_from_63() -> None:
    graph = parse("cat <(sort <(cut -f1 x) <(cut -f2 x)) | paste - <(echo y)", env=ENV)
    assert argvs(graph) == [
        ["cat", "/dev/fd/63"],
        ["sort", "/dev/fd/63", "/dev/fd/62"],
        ["cut", "-f1", "x"],
        ["cut", "-f2", "x"],
        ["paste", "-", "/dev/fd/63"],
        ["echo", "y"],
    ]
    assert (1, 5, 1, 0) in inner_edges(graph) and (6, 5, 1, 63) in inner_edges(graph)


def test_a_substitution_is_a_piece_of_a_word_as_in_bash() -> None:
    graph = parse("cmp --file=<(echo a) x<(echo b)y '<(not)' \"<(not)\" \\<\\(not\\)", env=ENV)
    assert graph.stage(1).argv == ("cmp", "--file=/dev/fd/63", "x/dev/fd/62y", "<(not)", "<(not)", "<(not)")
    assert len(graph) == 3
    assert parse("echo 2>(true) 2<(true)", env=ENV).stage(1).argv == ("echo", "2/dev/fd/63", "2/dev/fd/62")


def test_the_path_is_literal_text_and_the_inside_is_any_pipeline() -> None:
    env = {**ENV, "V": "two words"}
    graph = parse("cat *<(printf '%s )\\n' $V \"$V\" | -grep x)", env=env, cwd="/")
    assert graph.stage(1).argv[-1].endswith("/dev/fd/63")
    assert graph.stage(2).argv == ("printf", "%s )\\n", "two", "words", "two words")
    assert graph.stage(3).may_fail
    graph = parse("cat <({ echo a ; echo b } | sort) >({ wc -l ; wc -c })", env=ENV)
    assert inner_edges(graph) >= {(4, 1, 1, 63), (1, 5, 62, 0), (1, 6, 62, 0)}
    assert [s.writes_stdout_of for s in graph][4:] == [1, 1]


def test_placeholders_are_filled_inside() -> None:
    graph = parse(
        "cat <(cat part-{task_id}.txt) >(gzip > out-{task_num}.gz)", env=ENV, placeholders=placeholder_values(2, 4)
    )
    assert graph.stage(2).argv == ("cat", "part-2.txt")
    assert [str(r) for r in graph.stage(3).redirects] == ["> out-3.gz"]


def test_the_substitutions_are_drawn_beneath_their_holder() -> None:
    graph = parse("a | diff <(b) <(c | d) | e", env=ENV)
    assert [s.branch for s in graph] == [(), (), ((1, 0, 2),), ((1, 1, 2),), ((1, 1, 2),), ()]


def test_at_most_61_substitutions_in_one_command() -> None:
    assert len(parse("cat " + "<(true) " * 61, env=ENV)) == 62
    with pytest.raises(PipelineSyntaxError) as caught:
        parse("cat " + "<(true) " * 62, env=ENV)
    assert "at most 61 process substitutions" in caught.value.message
    assert caught.value.column == 4 + 61 * 8  # the 62nd


def test_nesting_is_limited_with_a_syntax_error() -> None:
    nested = "cat " + "<(cat " * MAX_SUBSTITUTION_DEPTH + "x" + ")" * MAX_SUBSTITUTION_DEPTH
    assert len(parse(nested, env=ENV)) == MAX_SUBSTITUTION_DEPTH + 1
    for depth in (MAX_SUBSTITUTION_DEPTH + 1, 10_000):
        with pytest.raises(PipelineSyntaxError) as caught:
            parse("cat " + "<(cat " * depth + "x" + ")" * depth, env=ENV)
        assert f"nest more than {MAX_SUBSTITUTION_DEPTH} deep" in caught.value.message


def test_groups_inside_substitutions_count_toward_the_nesting_limit() -> None:
    text = "cat " + "<({ { cat " * 40 + "x" + " } })" * 40  # 40 substitutions, 80 groups
    with pytest.raises(PipelineSyntaxError) as caught:
        parse(text, env=ENV)
    assert "groups and process substitutions nest more than 100 deep" in caught.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cat <(a", "unclosed process substitution"),
        ("cat <(a | )", "empty stage"),
        ("cat <( )", "empty process substitution"),
        ("cat <(a ; b)", "list of commands"),
        ("cat <(a })", "without a '{'"),
        ("cat <(a) )", "subshell"),
        ("<(a) b", "command's name"),
        ("X=1 <(a) b", "command's name"),
        ("cat < >(a)", "written into, not read"),
        ("cat >> <(a)", "read, not written into"),
        ("cat &> <(a)", "read, not written into"),
        ("cat <(a $(b))", "command substitution"),
    ],
)
def test_mistakes_are_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(PipelineSyntaxError) as caught:
        parse(text, env=ENV)
    assert message in caught.value.message
    assert caught.value.status == 2


_PIECES = st.lists(st.sampled_from(["cat", "a", "<(", ">(", ")", "|", "{", "}", ";", "<", ">", "x=", "'", "-"]))


@settings(max_examples=300, deadline=None)
@given(_PIECES.map(" ".join), _PIECES.map("".join))
def test_any_arrangement_gives_a_graph_whose_edges_name_real_descriptors_or_a_syntax_error(
    spaced: str, glued: str
) -> None:
    for text in (spaced, glued):
        try:
            graph = parse(text, env=ENV)
        except PipelineSyntaxError as error:
            assert error.status == 2
            continue
        for edge in graph.edges:
            assert edge.source_fd == 1 or 3 <= edge.source_fd <= 63
            assert edge.target_fd == 0 or 3 <= edge.target_fd <= 63
            holder = edge.target if edge.target_fd else edge.source
            if edge.substitution_fd is not None:
                assert isinstance(holder, int) and f"/dev/fd/{edge.substitution_fd}" in " ".join(
                    [*graph.stage(holder).argv, *(str(r) for r in graph.stage(holder).redirects),
                     *(v for _, v in graph.stage(holder).env)]
                )  # fmt: skip


def test_the_hint_for_shell_syntax_beside_a_substitution_runs_it_with_bash() -> None:
    """sh (dash on Debian) has no process substitution: the hinted command must be one that runs."""
    with pytest.raises(PipelineSyntaxError) as raised:
        parse("diff <(seq 3) <(seq 3) && echo same")
    assert raised.value.hint is not None
    assert "bash -c 'diff <(seq 3) <(seq 3) && echo same'" in raised.value.hint
    with pytest.raises(PipelineSyntaxError) as plain:
        parse("make && echo ok")
    assert plain.value.hint is not None and "sh -c 'make && echo ok'" in plain.value.hint
    assert "bash -c" not in plain.value.hint

"""The console script's fast command-line reader agrees with typer's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppipe.cli import options as cli
from ppipe.cli.config import Config
from ppipe.cli.entry import OPTIONS, quick_parse


def typer_reading(argv: list[str]) -> Config | None:
    """What typer makes of ``argv``: the Config it would run, or None for help, errors and the like."""
    import typer.main

    seen: list[Config] = []
    original = cli.dispatch
    cli.dispatch = seen.append  # type: ignore[assignment]
    try:
        typer.main.get_command(cli.app).main(argv, prog_name="ppipe", standalone_mode=False)
    except Exception:
        return None
    finally:
        cli.dispatch = original
    return seen[0] if seen else None


def test_both_readers_know_the_same_options() -> None:
    import typer.main

    command = typer.main.get_command(cli.app)
    declared = {
        name for param in command.params for name in (*param.opts, *param.secondary_opts) if name.startswith("-")
    } - {"-h", "--help"}
    assert declared == OPTIONS


_token = st.one_of(
    st.sampled_from(
        [
            "--no-fail",
            "--explain",
            "-q",
            "--quiet",
            "--lines",
            "--no-lines",
            "--pager",
            "--no-pager",
            "--",
            "-x",
            "--bogus",
            "--timeout",
            "--kill-after",
            "--report",
            "--timeout=1.5",
            "--kill-after=0",
            "--report=r.json",
            "--display",
            "--display=never",
            "always",
            "AUTO",
            "--progress",
            "plain",
            "--progress=none",
            "--fork",
            "--fork=2",
            "--max-restarts",
            "--fail-fast",
            "--tag",
            "--keep-order",
            "--block",
            "--block=64k",
            "--task-id",
            "--tasks=4",
            "--tasks",
            "1M",
            "3",
            "0.25",
            ".5",
            "1e3",
            "-1",
            "nan",
            "r.json",
            "-",
            "seq 3 | wc -l",
            "cat f",
        ]
    ),
    st.text(alphabet="abc |-=.", max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_token, max_size=6))
def test_fast_reading_matches_typer_whenever_it_reads(argv: list[str]) -> None:
    quick = quick_parse(argv)
    if quick is not None:
        assert typer_reading(argv) == quick


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["seq 3"], Config("seq 3")),
        (["--timeout", "2", "-q", "seq 3"], Config("seq 3", timeout=2.0, quiet=True)),
        (["seq 3", "--report=r.json", "--no-lines"], Config("seq 3", report="r.json", lines=False)),
        (["--", "-grep x"], Config("-grep x")),
        (["--kill-after=0.5", "--no-fail", "--explain", "x"], Config("x", kill_after=0.5, no_fail=True, explain=True)),
        (
            ["--fork", "4", "--max-restarts=2", "--tag", "--keep-order", "--block", "64k", "--fail-fast", "x"],
            Config("x", fork=4, max_restarts=2, tag=True, keep_order=True, block="64k", fail_fast=True),
        ),
        (["--task-id=3", "--tasks", "8", "x"], Config("x", task_id=3, tasks=8)),
    ],
)
def test_fast_reading(argv: list[str], expected: Config) -> None:
    assert quick_parse(argv) == expected
    assert typer_reading(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["a", "b"],
        ["--timeout", "x", "a"],
        ["--timeout"],
        ["--version", "a"],
        ["--bogus", "a"],
        ["-qx", "a"],
        ["--", "a", "b"],
    ],
)
def test_anything_unusual_goes_to_typer(argv: list[str]) -> None:
    assert quick_parse(argv) is None

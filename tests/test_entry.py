"""The console script's command-line reader: what it runs itself, and what it leaves to typer.

That both readings agree on every command line is tested in test_command_line_reading.py.
"""

from __future__ import annotations

import pytest

from ppipe.cli import options as cli
from ppipe.cli.config import Config, config_from
from ppipe.cli.entry import OPTIONS, _read


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


def fast_reading(argv: list[str]) -> Config | None:
    """The Config the console script runs without typer, or None when typer reads the line."""
    reading = _read(argv)
    return None if reading.for_typer or len(reading.words) != 1 else config_from(reading.words[0], reading.values)


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
        (["-q0j4", "x"], Config("x", quiet=True, null=True, jobs=4)),
        (["--timeout", "-1", "x", "--timeout", "3"], Config("x", timeout=3.0)),
        (["--sbatch", "-p", "x", "--sbatch=-t 5"], Config("x", sbatch=("-p", "-t 5"))),
        (["-q", "-grep x | wc"], Config("-grep x | wc", quiet=True)),
    ],
)
def test_fast_reading(argv: list[str], expected: Config) -> None:
    assert fast_reading(argv) == expected
    assert typer_reading(_read(argv).argv) == expected  # typer given the -- before "-grep x"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["a", "-h"],
        ["--timeout"],
        ["-qj"],
        ["--version", "a"],
        ["--bogus", "a"],
        ["-qx", "a"],
        ["--quiet=1", "a"],
    ],
)
def test_help_and_mistakes_go_to_typer(argv: list[str]) -> None:
    reading = _read(argv)
    assert reading.for_typer or not reading.words

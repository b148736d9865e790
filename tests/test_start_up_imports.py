"""What the installed ``ppipe`` imports: only what its run uses.

Read from ``python -X importtime``, which lists every module an interpreter
imports. A plain run needs tornado and the engine; the view (rich), typer,
the report writer (json), the shard and cluster packages are for the runs
that ask for them, and each costs start-up time whether used or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import ENV

#: The console script itself, run by the interpreter of these tests (which installed it).
SCRIPT = str(Path(sysconfig.get_path("scripts")) / "ppipe")

pytestmark = pytest.mark.skipif(not os.path.exists(SCRIPT), reason="needs the installed console script")

#: Never imported by ``ppipe true``: the packages of other runs, and what only some runs use.
NOT_FOR_A_PLAIN_RUN = (
    "rich",  # the view
    "typer",  # --help, completion, mistakes
    "click",
    "pydantic",
    "json",  # --report, --progress json (tornado imports it too: see below)
    "tempfile",  # spooling, the report's atomic write
    "ppipe.cli.report",
    "ppipe.cli.destinations",
    "ppipe.cli.show",  # report show, its pictures and the timeline
    "ppipe.cli.final",
    "ppipe.timeline",
    "ppipe.report",  # the report's model <-> JSON, and its schema
    "ppipe.report_shape",
    "ppipe.cli.explain",
    "ppipe.cli.options",
    "ppipe.snapshots",  # only a watched run takes snapshots
    "ppipe.shards",
    "ppipe.cluster",
    "ppipe.merging",
    "ppipe.api",
)


def import_tree(*argv: str, script: str = SCRIPT) -> dict[str, str]:
    """Every module Python imports to run ``ppipe ARGV`` (or ``-c pass`` without a script), each with the
    module that imported it ("" for the top level), in the order they finished loading."""
    command = [sys.executable, "-X", "importtime", *([script, *argv] if script else argv)]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = [line.rpartition("|")[2] for line in result.stderr.splitlines() if line.startswith("import time:")]
    rows = [(len(line) - len(line.lstrip()), line.strip()) for line in lines[1:]]  # [0]: the header
    # -X importtime lists a module after those it imported, indented one step less than they are.
    tree = {}
    for index, (depth, name) in enumerate(rows):
        tree[name] = next((parent for d, parent in rows[index + 1 :] if d < depth), "")
    return tree


def imported(*argv: str, script: str = SCRIPT) -> list[str]:
    return list(import_tree(*argv, script=script))


def within(names: list[str], packages: tuple[str, ...]) -> list[str]:
    return [name for name in names if any(name == p or name.startswith(f"{p}.") for p in packages)]


def test_a_plain_run_imports_neither_the_view_nor_typer_nor_the_report_nor_the_shards() -> None:
    tree = import_tree("true")
    assert "ppipe.engine.execution" in tree, tree  # it did run the pipeline
    # tornado.ioloop imports json through tornado.escape: a plain run pays for it, but not by ppipe's doing.
    if tree.get("json") == "tornado.escape":
        tree = {name: by for name, by in tree.items() if name != "json" and not name.startswith("json.")}
    assert within(list(tree), NOT_FOR_A_PLAIN_RUN) == []


def test_version_imports_nothing_beyond_what_python_has_and_ppipe_own_entry() -> None:
    """Not even the console script's ``import re`` of a generated entry point, nor enum (``signal`` brings it)."""
    python = set(imported("-c", "pass", script=""))
    extra = [name for name in imported("--version") if name not in python]
    assert extra == [
        "__future__",
        "ppipe",
        "ppipe.cli",
        "ppipe.interrupts",
        "ppipe.cli.option_table",
        "ppipe.cli.entry",
        "ppipe.cli.printing",
    ]


def test_the_view_and_the_report_are_imported_when_asked_for(tmp_path: Path) -> None:
    """The other side of the tests above: they look where these modules would show."""
    names = imported("--report", str(tmp_path / "r.json"), "--progress", "json", "true")
    assert {"json", "ppipe.cli.report", "ppipe.report", "ppipe.cli.progress"} <= set(names)
    assert within(names, ("typer", "rich")) == []
    names = imported("--help")
    assert "typer" in names

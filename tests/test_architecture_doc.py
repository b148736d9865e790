"""docs/architecture.md lists every module of the package, under its own folder, and defines its words."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipes" / "ppipe"
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


def listed_modules() -> set[str]:
    """The module paths the layers tree names: each indented name under the folder line above it."""
    tree = ARCHITECTURE.split("```", 2)[1]
    listed, folder = set(), ""
    for line in tree.splitlines():
        match = re.match(r"(\s*)(\S+)", line)
        if match is None or match.group(2).startswith("#"):
            continue
        indent, name = len(match.group(1)), match.group(2)
        if indent <= 2 and name.endswith("/"):
            folder = "" if name == "pipes/ppipe/" else name
        elif name.endswith(".py"):
            listed.add(folder + name if indent > 2 else name)
    return listed


def test_every_module_is_in_the_layers_tree() -> None:
    modules = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }
    assert modules - listed_modules() == set()
    assert listed_modules() - modules == set()  # and nothing that is gone


def test_the_words_shard_slot_attempt_task_backend_are_defined() -> None:
    words = ARCHITECTURE[ARCHITECTURE.index("## Words") :].split("\n## ", 1)[0]
    for word in ("Shard", "Slot", "Attempt", "Task", "Backend"):
        assert f"- **{word}**:" in words

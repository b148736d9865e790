"""The public API's types: ``mypy --strict`` holds callers of ``ppipe.run``, ``ppipe.stream`` and their async twins
to them.

One mypy process checks every snippet: the README's "Python API" examples
(read at test time, so the README cannot drift from the API), a snippet of
calls that must be rejected and one that reveals the ``fork`` overloads'
result types. Each test then reads what mypy said about its own file. A
line ending ``# expect: TEXT`` must get an error containing TEXT, a line
ending ``# reveal: TYPE`` a ``reveal_type`` note of exactly TYPE; any other
error fails the test. The revealed snippet also pins what a stream's lines are: bytes, or str with
``encoding=``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ppipe
from ppipe import api
from ppipe.engine.options import RunOptions
from ppipe.policy import parse_halt
from ppipe.shards.plan import ShardPlan

# One mypy run serves the module (``mypy_says``): on one xdist worker, or each worker would run it again.
pytestmark = pytest.mark.xdist_group("api_types")

README = Path(__file__).resolve().parent.parent / "README.md"

REJECTED = """\
import ppipe


async def main() -> None:
    await ppipe.run_async("true", tiemout=3)  # expect: Unexpected keyword argument "tiemout"


ppipe.run("true", tiemout=3)  # expect: Unexpected keyword argument "tiemout"
ppipe.run("a | b").shard  # expect: "RunResult" has no attribute "shard"
ppipe.run("x", fork="2")  # expect: Argument "fork" to "run" has incompatible type "str"; expected "int | None"
ppipe.run("x", stdin=b"")  # expect: Argument "stdin" to "run" has incompatible type "bytes"
ppipe.stream("x", stdout=1)  # expect: Unexpected keyword argument "stdout" for overloaded function "stream"
ppipe.stream("x", tiemout=1)  # expect: Unexpected keyword argument "tiemout" for overloaded function "stream"
ppipe.stream("x", errors="replace")  # expect: No overload variant of "stream" matches argument types "str", "str"
ppipe.stream_async("x", stdout=1)  # expect: Unexpected keyword argument "stdout" for overloaded function
"""

REVEALED = """\
import ppipe


async def main(fork: int | None) -> None:
    reveal_type(await ppipe.run_async("a | b"))  # reveal: ppipe.results.RunResult
    reveal_type(await ppipe.run_async("x", fork=2))  # reveal: ppipe.results.RunResult
    reveal_type(await ppipe.run_async("x", fork=fork))  # reveal: ppipe.results.RunResult


def sharded(fork: int | None) -> None:
    reveal_type(ppipe.run("x", fork=fork))  # reveal: ppipe.results.RunResult


reveal_type(ppipe.run("a | b"))  # reveal: ppipe.results.RunResult
reveal_type(ppipe.run("a | b", fork=None))  # reveal: ppipe.results.RunResult
reveal_type(ppipe.run("a | b").stages)  # reveal: tuple[ppipe.results.StageResult, ...]
reveal_type(ppipe.run("a | b").edge(1, 2))  # reveal: ppipe.flow.EdgeResult
reveal_type(ppipe.run("a | b", check=True).check())  # reveal: ppipe.results.RunResult
reveal_type(ppipe.run("x", fork=2))  # reveal: ppipe.results.RunResult
reveal_type(ppipe.run("x", fork=2).local)  # reveal: ppipe.results.PipelineResult | None
reveal_type(ppipe.run("x", fork=0, check=True).shards)  # reveal: typing.Sequence[ppipe.results.ShardResult]
reveal_type(ppipe.PipelineFailed(ppipe.run("x")).result.stages)  # reveal: tuple[ppipe.results.StageResult, ...]


def streamed(fork: int | None) -> None:
    with ppipe.stream("seq 3", fork=fork, tag=True) as run:
        reveal_type(run)  # reveal: ppipe.streaming.StreamedRun[bytes]
        for line in run:
            reveal_type(line)  # reveal: bytes
    reveal_type(run.result)  # reveal: ppipe.results.RunResult
    with ppipe.stream("seq 3", encoding="utf-8", errors="replace", record_end=b"\0") as text:
        for row in text:
            reveal_type(row)  # reveal: str


async def streamed_async() -> None:
    async with ppipe.stream_async("seq 3") as run:
        async for line in run:
            reveal_type(line)  # reveal: bytes
    async with ppipe.stream_async("seq 3", encoding="ascii") as text:
        async for row in text:
            reveal_type(row)  # reveal: str
    reveal_type(text.result)  # reveal: ppipe.results.RunResult
"""

#: ``path:line: severity: message``, as mypy prints it with ``--no-pretty``.
_MESSAGE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+): (?P<severity>error|note): (?P<text>.*)$")


def readme_python_examples() -> list[str]:
    """Every ```python block of the README's "## Python API" section (headings inside blocks are code)."""
    blocks: list[str] = []
    in_section = False
    block: list[str] | None = None
    fenced = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if block is not None:
                blocks.append("\n".join(block) + "\n")
                block = None
            elif in_section and line.strip() == "```python":
                block = []
            fenced = not fenced
            continue
        if block is not None:
            block.append(line)
        elif not fenced and line.startswith("## "):
            if in_section:
                break
            in_section = line.strip() == "## Python API"
    return blocks


@dataclasses.dataclass(frozen=True)
class Message:
    line: int
    severity: str
    text: str


@pytest.fixture(scope="module")
def mypy_says(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Message]]:
    """Runs mypy once over every snippet; returns its messages by snippet name (the file's stem)."""
    pytest.importorskip("mypy", reason="the types are checked with mypy (pip install -e '.[test]')")
    directory = tmp_path_factory.mktemp("api_types")
    sources = {f"readme_{n}": text for n, text in enumerate(readme_python_examples(), 1)}
    sources |= {"rejected": REJECTED, "revealed": REVEALED}
    for name, text in sources.items():
        (directory / f"{name}.py").write_text(text, encoding="utf-8")
    command = [
        sys.executable, "-m", "mypy", "--strict", "--python-version", "3.11", "--config-file", os.devnull,
        "--cache-dir", str(directory / ".mypy_cache"), "--show-error-codes", "--no-pretty", "--no-color-output",
        "--no-error-summary", *(f"{name}.py" for name in sources),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120)
    said: dict[str, list[Message]] = {name: [] for name in sources}
    for line in done.stdout.splitlines():
        match = _MESSAGE.match(line)
        if match is None:
            continue
        name = Path(match["file"]).stem
        assert name in said, f"mypy reports on a file that is not a snippet: {line}"
        said[name].append(Message(int(match["line"]), match["severity"], match["text"]))
    # mypy exits 1 when it found errors (the rejected snippet has some), 2 when it could not check at all.
    assert done.returncode in (0, 1), f"mypy did not run ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert said["revealed"], f"mypy said nothing about the revealed snippet:\n{done.stdout}\n{done.stderr}"
    return said


def _markers(source: str, marker: str) -> dict[int, str]:
    return {
        number: line.split(f"# {marker}: ", 1)[1]
        for number, line in enumerate(source.splitlines(), 1)
        if f"# {marker}: " in line
    }


def test_readme_python_api_examples_type_check(mypy_says: dict[str, list[Message]]) -> None:
    examples = readme_python_examples()
    assert examples, 'the README\'s "## Python API" section has no ```python example'
    assert any("ppipe.run(" in example for example in examples)
    for n, example in enumerate(examples, 1):
        errors = [m for m in mypy_says[f"readme_{n}"] if m.severity == "error"]
        lines = example.splitlines()
        assert not errors, f"README Python API example {n} does not type-check:\n" + "\n".join(
            f"  line {m.line}: {lines[m.line - 1].strip()}\n    {m.text}" for m in errors
        )


def test_misspelt_keyword_and_wrong_result_attributes_are_rejected(mypy_says: dict[str, list[Message]]) -> None:
    expected = _markers(REJECTED, "expect")
    errors = [m for m in mypy_says["rejected"] if m.severity == "error"]
    for line, text in expected.items():
        assert any(m.line == line and text in m.text for m in errors), (
            f"mypy did not reject line {line} of the snippet ({REJECTED.splitlines()[line - 1].strip()!r}) "
            f"with {text!r}; it said: {[m.text for m in errors if m.line == line]}"
        )
    unexpected = [m for m in errors if m.line not in expected]
    assert not unexpected, f"errors on lines that should type-check: {unexpected}"


def test_fork_overloads_give_the_result_types(mypy_says: dict[str, list[Message]]) -> None:
    said = mypy_says["revealed"]
    errors = [m for m in said if m.severity == "error"]
    assert not errors, f"the revealed snippet should type-check: {errors}"
    revealed = {m.line: m.text for m in said if m.text.startswith("Revealed type is ")}
    for line, type_ in _markers(REVEALED, "reveal").items():
        assert revealed.get(line) == f'Revealed type is "{type_}"', (
            f"line {line} ({REVEALED.splitlines()[line - 1].strip()!r}): {revealed.get(line)}"
        )


def test_a_misspelt_keyword_raises_type_error_at_run_time() -> None:
    with pytest.raises(TypeError, match="run\\(\\) got an unexpected keyword argument 'tiemout'"):
        ppipe.run("true", tiemout=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="tiemout"):
        asyncio.run(ppipe.run_async("true", tiemout=3))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ppipe.run("true", 3)  # type: ignore[call-arg]


def test_bytes_go_as_input_and_stdin_takes_a_descriptor_or_a_file_as_subprocess_does(tmp_path: Path) -> None:
    assert ppipe.run("tr a-z A-Z", input=b"abc", stdout=ppipe.CAPTURE).stdout == b"ABC"
    with pytest.raises(TypeError, match="pass bytes as input="):
        ppipe.run("cat", stdin=b"abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        ppipe.run("cat", stdin=0, input=b"abc")
    source, target = tmp_path / "in", tmp_path / "out"
    source.write_bytes(b"from a file\n")
    with source.open("rb") as stdin, target.open("wb") as stdout:
        assert ppipe.run("cat", stdin=stdin, stdout=stdout).ok
    assert target.read_bytes() == b"from a file\n"


def test_the_keywords_are_declared_once_and_cover_every_run_and_shard_option() -> None:
    """run and run_async take RunKeywords; the engine's and the shard plan's fields are keywords of the same names,
    and a keyword not given leaves its field at the dataclass's default (declared there, once)."""
    for function in (api.run, api.run_async):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["pipeline", "keywords"]
        assert function.__annotations__["keywords"] == "Unpack[RunKeywords]"
    for streaming in (api.stream, api.stream_async):
        assert list(inspect.signature(streaming).parameters) == ["pipeline", "encoding", "errors", "keywords"]
        assert streaming.__annotations__["keywords"] == "Unpack[PipelineKeywords]"
    assert ppipe.RunKeywords.__optional_keys__ - ppipe.PipelineKeywords.__optional_keys__ == {"stdout"}
    keywords = ppipe.RunKeywords.__optional_keys__
    # processes is fork itself; offset, stride and tasks place a machine's shards in a job array (the CLI's business).
    placing = {"processes", "offset", "stride", "tasks"}
    options = {f.name for f in dataclasses.fields(RunOptions)} | {f.name for f in dataclasses.fields(ShardPlan)}
    assert options - placing <= keywords, f"ppipe.run lacks the options {options - placing - keywords}"
    assert api._options("run", {}) == (RunOptions(), None)
    assert api._options("run", {"fork": 2}) == (RunOptions(), ShardPlan(2))
    assert api._options("run", {"fork": 2, "halt": "now,fail=1"})[1] == ShardPlan(2, halt=parse_halt("now,fail=1"))

"""Process substitution, differentially: ppipe against ``bash -o pipefail -c`` on the idioms people write.

Each case runs the same text (or bash's own spelling, for groups and
sharded runs) under bash and under the installed ``ppipe`` on both pump
paths, each in a freshly prepared directory at the same path. Stdout and
every file afterwards must be identical. Files are compared once both have
finished: bash does not wait for a ``>(...)`` but the captured stderr it
inherits keeps ``subprocess.run`` waiting for it, and ppipe waits for every
stage itself. The exit status must be bash's, except where ppipe counts a
substitution's status and bash loses it; those cases pin both statuses.

The descriptors are bash's (``/dev/fd/63``, then 62...): several cases print
them (``echo``, ``md5sum``, ``cmp``, ``ls /proc/self/fd``), which pins the
numbering and that a stage holds no descriptor but its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import ENV, PPIPE

pytestmark = pytest.mark.xdist_group("process-substitution")  # the cases share one pool of runs


@dataclass(frozen=True)
class Case:
    """One idiom. ``bash`` is bash's spelling where ppipe's differs; ``options`` are ppipe's;
    ``statuses`` is (bash's, ppipe's) where they differ by design."""

    name: str
    pipeline: str
    bash: str | None = None
    options: tuple[str, ...] = ()
    statuses: tuple[int, int] | None = None


TAR = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - dir"

CASES = [
    # -- comparing and combining files
    Case("diff-sorted", "diff <(sort a) <(sort b)"),
    Case("diff-same", "diff <(sort a) <(sort -r a | sort)"),
    Case("comm-common-keys", "comm -12 <(cut -f1 x.tsv | sort -u) <(cut -f1 y.tsv | sort -u)"),
    Case("comm-only-in-one", "comm -3 <(sort a) <(sort b)"),
    Case("paste-columns", "paste <(cut -f1 d.tsv) <(cut -f3 d.tsv | tr a-z A-Z)"),
    Case("join-count", "join <(sort -k1,1 l) <(sort -k1,1 r) | wc -l"),
    Case("join-lines", "join -t, <(sort -t, -k1,1 l.csv) <(sort -t, -k1,1 r.csv)"),
    Case("sort-merge", "sort -m <(sort a) <(sort b)"),
    Case("grep-patterns-from", "grep -F -f <(cut -f1 x.tsv) y.tsv"),
    Case("awk-two-files", "awk -F'\\t' 'NR==FNR { seen[$1]; next } $1 in seen' <(cut -f1 x.tsv) y.tsv"),
    Case("sort-unique-union", "sort -u <(cut -f1 x.tsv) <(cut -f1 y.tsv) | wc -l"),
    Case("cmp-binary", "cmp <(cat data.bin) data.bin"),
    # -- the descriptors bash gives
    Case("fd-numbers", "echo <(true) <(true) >(true)"),
    Case("fd-numbers-words-assignments-redirections", 'X=<(true) sh -c \'echo "$X" "$0" "$@"\' <(true) <(true)'),
    Case("fd-in-a-word", "echo x<(true)y --file=<(true)"),
    Case("fd-md5sum-names", "md5sum <(cat a) <(cat b)"),
    Case("fd-cmp-names", "cmp <(echo x) <(echo y)"),
    Case("fd-own-and-no-other", "ls /proc/self/fd <(true) <(true)"),
    Case("fd-none-leaked-to-neighbours", "cat <(echo a) | sh -c 'cat > /dev/null; ls /proc/self/fd'"),
    # -- redirections
    Case("redirect-from", "wc -l < <(grep -h ERROR *.log)"),
    Case("redirect-from-sorted", "sort -r < <(cat a b)"),
    Case("redirect-into", "seq 3 > >(tr 1-3 a-c > out.txt)"),
    Case("redirect-stderr-into", "sh -c 'echo err >&2; echo out' 2> >(tr a-z A-Z > err.txt)"),
    # -- output substitutions
    Case("tee-archive", f"{TAR} | tee >(sha256sum > sum.txt) >(wc -c > size.txt) | gzip -n > dir.tar.gz"),
    Case("tee-count-into-file", "tee >(wc -l > n.txt) < a | sort"),
    Case("tee-count-into-the-pipe", "seq 3 | tee >(wc -l) | sort"),
    Case("tee-two-filters", "cat a | tee >(grep an > an.txt) >(grep -v an > rest.txt) > /dev/null"),
    # -- nesting, quoting, globs, variables
    Case("nested", "cat <(sort <(cut -f1 x.tsv))"),
    Case("nested-twice", "diff <(sort <(cut -f1 x.tsv)) <(sort -r <(cut -f1 y.tsv))"),
    Case("nested-output-in-input", "cat <(seq 3 | tee >(wc -l > inner.txt))"),
    Case("glob-inside", "cat <(cat *.log | sort)"),
    Case("quoting-inside", "cat <(printf '%s\\n' 'a )b' \"c )d\" e\\)f)"),
    Case("variables-inside", 'cat <(echo "$GREETING" $GREETING)'),
    Case("pipeline-inside", "cat <(seq 10 | grep 1 | tr 1 X)"),
    # -- where in the pipeline
    Case("in-the-first-stage", "cat <(seq 3) | wc -l"),
    Case("in-a-middle-stage", "seq 5 | paste - <(seq 5 | sort -r) | cat"),
    Case("in-the-last-stage", "seq 3 | paste - <(seq 10 12)"),
    Case("reads-the-holders-stdin", "seq 3 | cat <(cat)"),
    # -- groups
    Case(
        "in-group-branches", "{ cat <(echo a) ; cat <(echo b) } | sort", bash="{ cat <(echo a); cat <(echo b); } | sort"
    ),
    Case("holding-a-group", "cat <({ echo b ; echo a } | sort)", bash="cat <({ echo b; echo a; } | sort)"),
    # -- readers that stop reading
    Case("reader-never-opens", "echo <(seq 1e9)"),
    Case("reader-stops-early", "head -1 <(yes)"),
    Case("reader-takes-a-little", "head -c 5 <(seq 100000)"),
    # -- failures: ppipe counts a substitution's status, bash loses it
    Case("failing-substitution", "diff <(sort missing.txt) <(sort b)", statuses=(1, 2)),
    Case("failing-substitution-holder-ok", "cat <(false) a", statuses=(0, 1)),
    Case("failing-substitution-marked", "cat <(-false) a"),  # ppipe's opt-out; bash runs -false: not found
    # -- sharded runs, placeholders inside
    Case(
        "fork-placeholders",
        "cat <(echo shard {task_id} of {tasks}) part-{task_id}.txt",
        bash="for i in 0 1; do cat <(echo shard $i of 2) part-$i.txt; done",
        options=("--fork", "2", "--keep-order"),
    ),
    Case(
        "each-placeholders",
        "paste <(echo {item}) <(echo {task_num})",
        bash="n=0; while read -r item; do n=$((n+1)); paste <(echo $item) <(echo $n); done < items.txt",
        options=("--each", "items.txt", "--keep-order"),
    ),
]

#: The prepared directory: text to sort, compare and join, logs to glob, a tree to archive, shards' parts.
FILES: dict[str, bytes] = {
    "a": b"banana\napple\ncherry\n",
    "b": b"cherry\nbanana\ndate\n",
    "x.tsv": b"k1\tone\nk2\ttwo\nk3\tthree\nk1\tagain\n",
    "y.tsv": b"k3\tthird\nk4\tfourth\nk1\tfirst\n",
    "d.tsv": b"1\tx\talpha\n2\ty\tbeta\n3\tz\tgamma\n",
    "l": b"b 2\na 1\nc 3\n",
    "r": b"c z\na x\nd w\n",
    "l.csv": b"k2,left2\nk1,left1\n",
    "r.csv": b"k1,right1\nk3,right3\nk2,right2\n",
    "app1.log": b"INFO start\nERROR disk\nINFO stop\n",
    "app2.log": b"ERROR net\nERROR disk\n",
    "dir/one.txt": b"one\n",
    "dir/sub/two.txt": b"two\n" * 1000,
    "part-0.txt": b"zero\n",
    "part-1.txt": b"one\n",
    "items.txt": b"apple\nbanana\n",
    "data.bin": bytes(range(256)) * 64,
}

#: ppipe's way and bash's way of running each case, each twice for ppipe (both pump paths).
RUNNERS = ("bash", "ppipe/splice", "ppipe/stream")


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    stderr: bytes
    status: int
    files: dict[str, str]


def prepare(directory: Path) -> None:
    for name, content in FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory``: relative path -> sha256."""
    return {
        os.path.relpath(os.path.join(root, name), directory): hashlib.sha256(Path(root, name).read_bytes()).hexdigest()
        for root, _, names in os.walk(directory)
        for name in names
    }


def run_one(case: Case, runner: str, directory: Path) -> Outcome:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()
    prepare(directory)
    env = {**ENV, "GREETING": "hello   world", "PPIPE_SPLICE": "0" if runner.endswith("stream") else "1"}
    if runner == "bash":
        argv = ["bash", "-o", "pipefail", "-c", case.bash or case.pipeline]
    else:
        argv = [PPIPE, "-q", *case.options, case.pipeline]
    done = subprocess.run(argv, cwd=directory, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    return Outcome(done.stdout, done.stderr, done.returncode, snapshot(directory))


def run_case(case: Case, base: Path) -> dict[str, Outcome]:
    """The case under each runner, one after the other in the same directory (the same absolute paths)."""
    directory = base / case.name
    return {runner: run_one(case, runner, directory) for runner in RUNNERS}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Outcome]]:
    base = tmp_path_factory.mktemp("process-substitution")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.name: pool.submit(run_case, case, base) for case in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_there_are_enough_idioms() -> None:
    assert len(CASES) >= 30 and len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_same_output_and_files_as_bash(outcomes: dict[str, dict[str, Outcome]], case: Case) -> None:
    by_bash = outcomes[case.name]["bash"]
    for runner in RUNNERS[1:]:
        by_ppipe = outcomes[case.name][runner]
        assert b"Traceback" not in by_ppipe.stderr, by_ppipe.stderr.decode()
        assert by_ppipe.stdout == by_bash.stdout, (runner, by_ppipe.stdout[:500], by_bash.stdout[:500])
        assert by_ppipe.files == by_bash.files, runner
        expected = case.statuses[1] if case.statuses else by_bash.status
        assert by_ppipe.status == expected, (runner, by_ppipe.stderr.decode())
    if case.statuses:
        assert by_bash.status == case.statuses[0]

"""Differential tests: ppipe against ``bash -o pipefail -c`` on the same pipelines.

Each case runs the same pipeline text twice in the same freshly prepared
directory (same absolute path, so paths printed by either agree): once under
``bash -o pipefail -c`` and once through the installed ``ppipe`` console
script, with the same environment (``LC_ALL=C``, a few known variables, a
known ``HOME``) and the same stdin bytes. Stdout, the exit status and every
file in the directory afterwards must be identical. Stderr is never compared
(bash and ppipe word their own errors differently); ppipe's stderr must just
never show a Python traceback.

The documented difference — a producer killed by SIGPIPE is not a failure for
ppipe, where bash's pipefail reports 141 — is asserted exactly, separately.

ppipe starts a Python interpreter per run (about half a second of CPU), so
all the runs this session will check are started at once in a thread pool
when the module's first test asks for its result; each test then only
checks its own case.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import ENV, bash, ppipe, python_stage

#: The cases are dealt to this many xdist groups. A group's runs start together, on the worker that takes the group
#: (``runs``), and the groups spread over the workers: no worker runs a case another worker was given.
GROUPS = 3


def in_group(index: int) -> pytest.MarkDecorator:
    return pytest.mark.xdist_group(f"differential-{index % GROUPS}")


# ---------------------------------------------------------------- the prepared directory

#: Text files with known lines, globbable *.txt files (byte order puts "Zeta"
#: before "a"), a name with a space, a hidden file, a subdirectory and a file
#: that is not executable; plus data.bin, holding every byte value.
TEXT_FILES: dict[str, bytes] = {
    "lines.txt": b"banana\napple\ncherry\napple\ndate\nelderberry\nfig\n",
    "nums.txt": b"10\n9\n100\n1\n2\n",
    "a.txt": b"alpha\n",
    "b.txt": b"bravo\n",
    "ab.txt": b"ab\n",
    "Zeta.txt": b"zeta\n",
    "with space.txt": b"spaced line\n",
    "notes.md": b"# title\nbody\n",
    ".hidden": b"secret\n",
    "sub/one.log": b"one\n",
    "sub/two.log": b"two\n",
    "noexec.sh": b"#!/bin/sh\necho should not run\n",
}
BINARY = bytes(range(256)) * 16 + random.Random(20240611).randbytes(120_000)

#: Variables both runs see; the names in REMOVED are guaranteed unset.
VARIABLES = {
    "GREETING": "hello   world",
    "SPACED": "  a  b  ",
    "BLANKS": "   ",
    "EMPTY": "",
    "PAT": "*.txt",
    "FILE": "with space.txt",
    "TABS": "x\ty\nz",
    "SORT_R": "sort -r",
}
REMOVED = ("FOO", "BAR", "A", "X", "UNSET", "UNSET_VAR", "GREETING_x")


def prepare(directory: Path) -> None:
    """Fills ``directory`` (which must exist) with the input files."""
    for name, content in TEXT_FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (directory / "noexec.sh").chmod(0o644)
    (directory / "data.bin").write_bytes(BINARY)


def wipe(directory: Path) -> None:
    """Empties ``directory`` but keeps it, so the second run sees the same path."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def snapshot(directory: Path) -> dict[str, tuple[int, str, bytes]]:
    """Everything under ``directory``: relative path → (size, sha256, first bytes); directories end in '/'."""
    files: dict[str, tuple[int, str, bytes]] = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs:
            files[os.path.relpath(os.path.join(root, name), directory) + "/"] = (0, "", b"")
        for name in names:
            data = Path(root, name).read_bytes()
            files[os.path.relpath(os.path.join(root, name), directory)] = (
                len(data),
                hashlib.sha256(data).hexdigest(),
                data[:120],
            )
    return files


def environment(home: Path, pycache: Path) -> dict[str, str]:
    """helpers' ``ENV`` (C locale) with our variables and ``HOME``, for bash and ppipe alike.

    Python may write its bytecode cache (to a private directory): ppipe then
    does not recompile its own modules on each of the many runs.
    """
    env = {k: v for k, v in ENV.items() if k not in (*REMOVED, "PYTHONDONTWRITEBYTECODE")}
    env.update(VARIABLES, HOME=str(home), PYTHONPYCACHEPREFIX=str(pycache))
    return env


# ---------------------------------------------------------------- running


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    stderr: bytes
    status: int
    files: dict[str, tuple[int, str, bytes]]


def run_bash(script: str, cwd: Path, env: dict[str, str], stdin: bytes | None) -> subprocess.CompletedProcess[bytes]:
    """``bash -o pipefail -c`` with a given environment (helpers' ``bash`` always uses ``ENV``)."""
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        input=stdin,
        capture_output=True,
        timeout=60,
        cwd=cwd,
        env=env,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def run_ppipe(pipeline: str, cwd: Path, env: dict[str, str], stdin: bytes | None) -> subprocess.CompletedProcess[bytes]:
    return ppipe(pipeline, input=stdin, cwd=str(cwd), env=env)


#: ppipe runs each case on both of its pump paths: the kernel's splice and Python's IOStreams.
PUMP_PATHS = {"splice": "1", "stream": "0"}


def run_all(base: Path, env: dict[str, str], pipeline: str, stdin: bytes | None) -> dict[str, Outcome]:
    """Runs ``pipeline`` under bash, then under ppipe on each pump path, each in the same freshly prepared directory."""
    directory = Path(tempfile.mkdtemp(dir=base))
    runs: list[tuple[str, Callable[..., subprocess.CompletedProcess[bytes]], dict[str, str]]] = [
        ("bash", run_bash, env)
    ]
    runs += [(f"ppipe/{path}", run_ppipe, {**env, "PPIPE_SPLICE": flag}) for path, flag in PUMP_PATHS.items()]
    outcomes = {}
    for name, runner, runner_env in runs:
        wipe(directory)
        prepare(directory)
        done = runner(pipeline, directory, runner_env, stdin)
        outcomes[name] = Outcome(done.stdout, done.stderr, done.returncode, snapshot(directory))
    shutil.rmtree(directory)
    return outcomes


def run_sigpipe(base: Path, pipeline: str) -> tuple[Outcome, Outcome]:
    """The SIGPIPE cases, through helpers' helpers as they are."""
    directory = tempfile.mkdtemp(dir=base)
    by_bash, by_ppipe = bash(pipeline, cwd=directory), ppipe(pipeline, cwd=directory)
    shutil.rmtree(directory)
    return (
        Outcome(by_bash.stdout, by_bash.stderr, by_bash.returncode, {}),
        Outcome(by_ppipe.stdout, by_ppipe.stderr, by_ppipe.returncode, {}),
    )


def run_bad(base: Path, pipeline: str) -> subprocess.CompletedProcess[bytes]:
    """ppipe alone, in a directory where '*.txt' matches two files."""
    directory = Path(tempfile.mkdtemp(dir=base))
    for name in ("a.txt", "b.txt"):
        (directory / name).write_text(name)
    done = ppipe(pipeline, cwd=str(directory))
    shutil.rmtree(directory)
    return done


class Runs:
    """Starts the runs of a group of this module's tests at once, when the first of them asks; hands each its result."""

    def __init__(self, base: Path, env: dict[str, str], items: list[pytest.Item]) -> None:
        self.base = base
        self.env = env
        self.items = items
        self.pool = ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 2)))
        self.futures: dict[str, Future[Any]] = {}
        self.groups: set[str] = set()

    def job(self, test: str, params: dict[str, Any]) -> Callable[[], Any] | None:
        if test == "test_same_as_bash":
            return lambda: run_all(self.base, self.env, params["pipeline"], params["stdin"])
        if test == "test_sigpipe_is_not_a_failure":
            return lambda: run_sigpipe(self.base, params["pipeline"])
        if test == "test_bad_input_never_shows_a_traceback":
            return lambda: run_bad(self.base, params["pipeline"])
        return None

    def submit(self, item: pytest.Item) -> None:
        callspec = getattr(item, "callspec", None)
        job = self.job(getattr(item, "originalname", item.name), dict(callspec.params) if callspec else {})
        if job is not None and item.nodeid not in self.futures:
            self.futures[item.nodeid] = self.pool.submit(job)

    def result(self, item: pytest.Item) -> Any:
        group = _group_of(item)
        if group not in self.groups:
            self.groups.add(group)
            for other in self.items:
                if _group_of(other) == group:
                    self.submit(other)
        self.submit(item)
        return self.futures[item.nodeid].result()


def _group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0]) if marker else ""


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    home = tmp_path_factory.mktemp("home")
    (home / "note.txt").write_bytes(b"a note at home\n")
    items = [item for item in request.session.items if getattr(item, "module", None) is request.module]
    started = Runs(
        tmp_path_factory.mktemp("differential"), environment(home, tmp_path_factory.mktemp("pycache")), items
    )
    yield started
    started.pool.shutdown(wait=True, cancel_futures=True)


def shown(data: bytes, limit: int = 600) -> str:
    text = repr(data[:limit])
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


# ---------------------------------------------------------------- the cases

# One write, so the consumer cannot leave before the producer has written everything
# (PYTHONUNBUFFERED may be set, and print() would then write line by line).
PY_TWO_LINES = python_stage("import os; os.write(1, b'first\\nsecond\\n')")

# (id, pipeline, stdin bytes or None, marks)
CASES: list[tuple[str, str, bytes | None, tuple[pytest.MarkDecorator, ...]]] = [
    # -- quoting
    (
        "quote-single-and-double",
        "echo 'single  quoted | & ; < > $HOME *.txt' \"double  quoted | & ; < > *.txt\"",
        None,
        (),
    ),
    ("quote-backslash", "echo a\\ b\\|c \\> \\& \\; \\< d\\\\e \\\"q\\' trailing\\", None, ()),
    ("quote-empty-and-adjacent", "printf '[%s]\\n' \"\" '' x \"\"'' \"a\"'b'c\"d e\"f 'it'\\''s'", None, ()),
    (
        "quote-escapes-and-escaped-expansions",
        r"""printf '[%s]\n' "q\"uote \$HOME back\\slash tick\` keep\n \x" \$HOME \~ \*.txt "\*" '\$'""",
        None,
        (),
    ),
    (
        "quote-operators-in-quotes",
        "printf '%s\\n' 'a|b' 'semi;colon' \"amp&&and\" 'or||or' '$(not run)' \"2>&1\" '`tick`' '<<EOF' "
        "| grep -F -v 'or||or'",
        None,
        (),
    ),
    ("quote-awk-program", "awk '{ print $2 \"|\" $1 }' 'with space.txt'", None, ()),
    # -- variables
    (
        "var-split-quoted-braces",
        'printf \'[%s]\\n\' $GREETING "$GREETING" ${GREETING}x "${GREETING}"y x${EMPTY}y',
        None,
        (),
    ),
    (
        "var-blanks-at-edges",
        'printf \'[%s]\\n\' $SPACED x$SPACED"y" "$SPACED" $BLANKS a${BLANKS}b $TABS "$TABS"',
        None,
        (),
    ),
    (
        "var-unset-and-empty",
        'printf \'[%s]\\n\' $UNSET_VAR "$UNSET_VAR" ${UNSET_VAR} pre${UNSET_VAR}post $EMPTY a "$EMPTY" '
        '""$EMPTY $EMPTY"" $EMPTY$UNSET_VAR',
        None,
        (),
    ),
    ("var-names-and-lone-dollar", 'printf \'[%s]\\n\' $GREETING_x $GREETING-x $GREETING.x $ a$ "$" "a $ b"', None, ()),
    ("var-glob-unquoted-and-quoted", "printf '[%s]\\n' $PAT \"$PAT\"", None, ()),
    ("var-as-command", "$EMPTY $SORT_R lines.txt | sed -n 1,2p", None, ()),
    ("var-file-with-space-unquoted", "cat $FILE | wc -l", None, ()),
    # -- tilde
    ("tilde-forms", "printf '[%s]\\n' ~ ~/sub \"~\" \\~ a~ ~nosuchuser1234 '~'/x ~root ~root/x", None, ()),
    ("tilde-read-file", "cat ~/note.txt | wc -c", None, ()),
    ("tilde-in-assignment", "X=~/note.txt sh -c 'cat \"$X\"'", None, ()),
    # -- globs
    ("glob-star-sorted", "printf '[%s]\\n' *.txt", None, ()),
    ("glob-brackets", "printf '[%s]\\n' ?.txt [ab].txt [!a].txt [A-Z]* with?space.txt", None, ()),
    ("glob-posix-class", "printf '[%s]\\n' [[:upper:]]* [[:digit:]]*", None, ()),
    ("glob-no-match-literal", "printf '[%s]\\n' *.nomatch no?such [x]y *.TXT nosuchdir/* a[", None, ()),
    ("glob-quoted-parts-literal", "printf '[%s]\\n' \"*.txt\" '?.txt' \\*.txt \"[ab]\".txt \"with \"* 'a'*", None, ()),
    ("glob-dirs-and-hidden", "printf '[%s]\\n' sub/* */*.log **/*.log */ *", None, ()),
    # -- NAME=value per stage
    ("assign-simple", "FOO=1 sh -c 'echo $FOO'", None, ()),
    ("assign-several", 'FOO=1 BAR="two  words" X= A=a=b sh -c \'echo "$FOO|$BAR|${X-unset}|$A"\'', None, ()),
    ("assign-no-split-no-glob", 'A=$GREETING X=*.txt sh -c \'printf "[%s]\\n" "$A" "$X"\'', None, ()),
    ("assign-only-its-stage", "FOO=1 true | sh -c 'echo ${FOO:-unset}'", None, ()),
    ("assign-overrides-env-not-own-args", 'GREETING=new sh -c \'echo "$GREETING|$1"\' sh "$GREETING"', None, ()),
    ("assign-after-redirection", "> out.txt FOO=1 sh -c 'echo $FOO'", None, ()),
    ("assign-after-command-is-arg", "sh -c 'echo \"$1\"' sh FOO=1", None, ()),
    ("assign-quoted-is-command", '"FOO=1" true', None, ()),
    # -- redirections
    ("redir-append", "printf 'extra\\n' >> lines.txt", None, ()),
    ("redir-in-and-out", "sort < lines.txt | uniq -c > counts.txt", None, ()),
    ("redir-first-word-explicit-fds", "0< lines.txt sort -r 1> out.txt", None, ()),
    ("redir-no-spaces", "echo a2>x.out", None, ()),
    ("redir-quoted-names", "cat < \"with space.txt\" > 'out file.txt'", None, ()),
    ("redir-glob-and-var-targets", 'cat < wi*.txt > "$FILE.copy"', None, ()),
    ("redir-several-targets", "cat < a.txt < b.txt > first.out > second.out", None, ()),
    ("redir-truncates-own-input", "sort < lines.txt > lines.txt", None, ()),
    ("redir-empty-target", "echo hi > '' | wc -l", None, ()),
    ("redir-stderr-file-and-append", "ls nonexistent-file 2> err.txt | ls nonexistent-2 2>> lines.txt", None, ()),
    ("redir-stderr-to-stdout", "ls nonexistent-file lines.txt 2>&1 | sort", None, ()),
    ("redir-both-to-file", "sh -c 'echo 1; echo 2 >&2; echo 3' &> all.txt | wc -c", None, ()),
    ("redir-pipe-both", "ls nonexistent-file lines.txt |& sort", None, ()),
    ("redir-pipe-both-after-stderr-file", "sh -c 'echo out; echo err >&2' 2>/dev/null |& sort", None, ()),
    ("redir-pipe-both-after-stdout-file", "sh -c 'echo out; echo err >&2' >/dev/null |& wc -c", None, ()),
    ("redir-order-file-then-dup", "sh -c 'echo 1; echo 2 >&2; echo 3' > out.txt 2>&1", None, ()),
    ("redir-order-dup-then-file", "ls nonexistent-file lines.txt 2>&1 > out.txt | tr a-z A-Z", None, ()),
    ("redir-stdout-to-stderr", "sh -c 'echo out' >&2 | wc -c", None, ()),
    ("redir-stdout-devnull", "sh -c 'echo out; echo err >&2' 2>&1 >/dev/null | wc -c", None, ()),
    # -- missing files
    ("missing-redir-input", "cat < /nonexistent | wc -l", None, ()),
    ("missing-redir-output-dir", "echo hi > /nonexistent/dir/x | wc -l", None, ()),
    ("missing-arg-file", "cat /nonexistent | wc -l", None, ()),
    ("ambiguous-redirect-alone", "cat < *.txt", None, ()),
    ("ambiguous-redirect-in-pipeline", "cat < *.txt | wc -l", None, ()),
    # -- exit statuses
    ("status-false-true", "false | true", None, ()),
    ("status-true-false", "true | false", None, ()),
    ("status-producer-fails-after-consumer", "sh -c 'sleep 1; exit 3' | true", None, ()),
    ("status-rightmost-wins", "sh -c 'exit 3' | sh -c 'exit 4'", None, ()),
    ("status-three-stages", "sh -c 'exit 5' | sh -c 'exit 200' | cat", None, ()),
    ("status-middle-failure", "seq 3 | sh -c 'cat; exit 7' | cat", None, ()),
    ("status-signal", "sh -c 'kill -TERM $$' | cat", None, ()),
    ("status-sigpipe-then-failure", "yes | sh -c 'head -n 1; exit 3'", None, ()),
    ("status-not-found-last", "true | nosuchcommand-xyz", None, ()),
    ("status-empty-command-name", '"$EMPTY" x', None, ()),
    ("status-not-executable", "./noexec.sh", None, ()),
    ("status-directory", "./sub", None, ()),
    # -- early-exiting consumers whose producer has already written everything (no SIGPIPE)
    ("early-head", "seq 1 100 | head -3", None, ()),
    ("early-sed-quit", "cat lines.txt | sed 2q", None, ()),
    ("early-python-producer", f"{PY_TWO_LINES} | head -1", None, ()),
    # -- large-ish data
    ("large-awk-sum", "seq 1 200000 | awk '{ s += $1 } END { print s, NR }'", None, ()),
    ("large-grep-count", "seq 1 200000 | grep 7 | wc -l", None, ()),
    ("large-tr-cut-uniq", "seq 1 200000 | tr 0-9 a-j | cut -c1-2 | sort | uniq -c | sort -rn | tail -4", None, ()),
    ("large-pipe-both-to-file", "seq 1 200000 |& sort -n -r > big.txt", None, ()),
    # -- binary data
    ("binary-copy-file", "cat < data.bin | cat | cat > copy.bin", None, ()),
    ("binary-stdout", "head -c 5000 data.bin | cat", None, ()),
    ("binary-tr-swap-halves", "cat data.bin | tr '\\000-\\177\\200-\\377' '\\200-\\377\\000-\\177' | md5sum", None, ()),
    ("binary-gzip-roundtrip", "cat data.bin | gzip -c -n | gunzip -c | cmp - data.bin", None, ()),
    # -- line continuations and comments
    ("layout-backslash-newline", "seq 1 20 \\\n  | grep 1 \\\n  | wc -l", None, ()),
    ("layout-newline-and-comment-after-pipe", "seq 1 20 |  # keep the twos\n  grep 2 |\n\n  wc -l", None, ()),
    ("layout-comments", "# first a comment\n  echo a#b 'c #d' e\\#f # it's a comment | not a stage", None, ()),
    ("layout-continuation-in-words", "\n\t echo ab\\\ncd \"ef\\\ngh\" 'ij\\\nkl'  \n", None, ()),
    # -- stdin from the test
    ("stdin-sort-uniq", "sort | uniq -c", b"b\na\nb\nc\na\nb\n", ()),
    ("stdin-binary", "cat | sha256sum", BINARY, ()),
    ("stdin-nul-cr-no-final-newline", "od -c | tr a-z A-Z", b"a\x00b\r\n\xff\xfe\nlast", ()),
    ("stdin-ignored-by-redirect", "cat < nums.txt", b"from stdin\n", ()),
]


def _params() -> list[Any]:
    return [
        pytest.param(pipeline, stdin, id=case_id, marks=[*marks, in_group(index)])
        for index, (case_id, pipeline, stdin, marks) in enumerate(CASES)
    ]


@pytest.mark.parametrize(("pipeline", "stdin"), _params())
def test_same_as_bash(runs: Runs, request: pytest.FixtureRequest, pipeline: str, stdin: bytes | None) -> None:
    outcomes = runs.result(request.node)
    by_bash = outcomes.pop("bash")
    for name, by_ppipe in outcomes.items():
        context = (
            f"\npipeline: {pipeline!r} ({name})\nbash stderr: {shown(by_bash.stderr)}"
            f"\nppipe stderr: {shown(by_ppipe.stderr)}"
        )
        # Only ppipe's own traceback counts; a Python stage's would be in bash's stderr too.
        assert b"Traceback" not in by_ppipe.stderr or b"Traceback" in by_bash.stderr, context
        assert by_ppipe.stdout == by_bash.stdout, (
            f"stdout differs\nbash:  {shown(by_bash.stdout)}\nppipe: {shown(by_ppipe.stdout)}{context}"
        )
        assert by_ppipe.status == by_bash.status, (
            f"status differs: bash {by_bash.status}, ppipe {by_ppipe.status}{context}"
        )
        assert by_ppipe.files == by_bash.files, f"files differ{context}"


def test_cases_are_many_and_distinct() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))
    assert len({case[1] for case in CASES}) == len(CASES)
    assert len(CASES) >= 60


# ---------------------------------------------------------------- the documented difference


@pytest.mark.parametrize(
    "pipeline",
    [
        pytest.param("yes | head -1", id="yes-head"),
        pytest.param("seq 1 10000000 | head -3", id="seq-head"),
        pytest.param("cat /dev/zero | head -c 10", id="zero-head-c"),
    ],
)
@in_group(1)
def test_sigpipe_is_not_a_failure(runs: Runs, request: pytest.FixtureRequest, pipeline: str) -> None:
    """bash -o pipefail reports the producer's SIGPIPE as 141; for ppipe it is not a failure."""
    by_bash, by_ppipe = runs.result(request.node)
    assert by_bash.status == 141
    assert by_ppipe.status == 0, shown(by_ppipe.stderr)
    assert by_ppipe.stdout == by_bash.stdout
    assert b"Traceback" not in by_ppipe.stderr


# ---------------------------------------------------------------- never a traceback


@pytest.mark.parametrize(
    "pipeline",
    [
        pytest.param("", id="empty"),
        pytest.param("echo 'unclosed", id="unclosed-quote"),
        pytest.param("echo $(ls) `ls`", id="command-substitution"),
        pytest.param("$EMPTY_AND_UNSET | wc -l", id="command-expands-to-nothing"),
        pytest.param("cat < *.txt | nosuchcommand-xyz", id="ambiguous-and-missing"),
        pytest.param("echo hi > /nonexistent/x | nosuchcommand-xyz", id="unopenable-and-missing"),
    ],
)
@in_group(2)
def test_bad_input_never_shows_a_traceback(runs: Runs, request: pytest.FixtureRequest, pipeline: str) -> None:
    done = runs.result(request.node)
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.stderr.strip(), "a failing run says why"

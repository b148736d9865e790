"""Differential tests: ppipe against ``bash -o pipefail -c`` on the same pipelines.

Each case runs the same pipeline text twice in the same freshly prepared
directory (same absolute path, so paths printed by either agree): once under
``bash -o pipefail -c`` and once through the installed ``ppipe`` console
script, with the same environment and the same stdin bytes. Stdout, the exit
status and every file in the directory afterwards must be identical. Stderr
is never compared (bash and ppipe word their own errors differently); ppipe's
stderr must just never show a Python traceback.

The documented difference — a producer killed by SIGPIPE is not a failure for
ppipe, where bash's pipefail reports 141 — is asserted exactly, separately.

ppipe starts a Python interpreter per run, so the runs are done in a thread
pool as soon as the module's first test asks for a result; each test then
only checks its own case.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ENV, bash, ppipe, python_stage

# ---------------------------------------------------------------- the prepared directory

#: Text files with known lines, globbable *.txt files (byte order puts "Zeta"
#: before "a"), a name with a space, a hidden file, a subdirectory, a file
#: that is not executable, and a binary file holding every byte value.
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
BINARY = bytes(range(256)) * 16 + random.Random(20240611).randbytes(300_000)

#: Variables both runs see; FOO, BAR, A, X and UNSET_* are guaranteed unset.
VARIABLES = {
    "GREETING": "hello   world",
    "SPACED": "  a  b  ",
    "EMPTY": "",
    "PAT": "*.txt",
    "FILE": "with space.txt",
    "TABS": "x\ty\nz",
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
    """Every file under ``directory``: relative path → (size, sha256, first bytes); directories too."""
    files: dict[str, tuple[int, str, bytes]] = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs:
            files[os.path.relpath(os.path.join(root, name), directory) + "/"] = (0, "", b"")
        for name in names:
            data = Path(root, name).read_bytes()
            files[os.path.relpath(os.path.join(root, name), directory)] = (
                len(data), hashlib.sha256(data).hexdigest(), data[:120])
    return files


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if k not in REMOVED}
    env.update(VARIABLES, HOME=str(home))
    return env


# ---------------------------------------------------------------- running both


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    stderr: bytes
    status: int
    files: dict[str, tuple[int, str, bytes]]


def run_bash(script: str, cwd: Path, env: dict[str, str], stdin: bytes | None) -> subprocess.CompletedProcess[bytes]:
    """``bash -o pipefail -c`` with our own environment (conftest's ``bash`` always uses ``ENV``)."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], input=stdin, capture_output=True, timeout=60,
                          cwd=cwd, env=env, stdin=None if stdin is not None else subprocess.DEVNULL)


def run_both(base: Path, home: Path, pipeline: str, stdin: bytes | None) -> tuple[Outcome, Outcome]:
    """Runs ``pipeline`` under bash, then ppipe, each in the same freshly prepared directory."""
    directory = Path(tempfile.mkdtemp(dir=base))
    env = environment(home)
    outcomes = []
    for runner in (run_bash, lambda text, cwd, env, stdin: ppipe(text, input=stdin, cwd=str(cwd), env=env)):
        wipe(directory)
        prepare(directory)
        done = runner(pipeline, directory, env, stdin)
        outcomes.append(Outcome(done.stdout, done.stderr, done.returncode, snapshot(directory)))
    shutil.rmtree(directory)
    return outcomes[0], outcomes[1]


def run_sigpipe(base: Path, pipeline: str) -> tuple[Outcome, Outcome]:
    """The SIGPIPE cases: the default environment, conftest's helpers as they are."""
    directory = Path(tempfile.mkdtemp(dir=base))
    by_bash = bash(pipeline, cwd=str(directory))
    by_ppipe = ppipe(pipeline, cwd=str(directory))
    shutil.rmtree(directory)
    return tuple(Outcome(d.stdout, d.stderr, d.returncode, {}) for d in (by_bash, by_ppipe))  # type: ignore[return-value]


class Runs:
    """Starts every run this session will ask for at once, in a thread pool; hands out results."""

    def __init__(self, base: Path, home: Path) -> None:
        self.base = base
        self.home = home
        self.pool = ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 2)))
        self.futures: dict[tuple[str, str], Future[tuple[Outcome, Outcome]]] = {}

    def job(self, test: str, params: dict[str, Any]) -> Callable[[], tuple[Outcome, Outcome]] | None:
        if test == "test_same_as_bash":
            return lambda: run_both(self.base, self.home, params["pipeline"], params["stdin"])
        if test == "test_sigpipe_is_not_a_failure":
            return lambda: run_sigpipe(self.base, params["pipeline"])
        return None

    def submit(self, test: str, params: dict[str, Any]) -> None:
        key = (test, repr(sorted(params.items())))
        job = self.job(test, params)
        if job is not None and key not in self.futures:
            self.futures[key] = self.pool.submit(job)

    def get(self, test: str, **params: Any) -> tuple[Outcome, Outcome]:
        self.submit(test, params)
        return self.futures[(test, repr(sorted(params.items())))].result()


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("home")
    (home / "note.txt").write_bytes(b"a note at home\n")
    result = Runs(tmp_path_factory.mktemp("differential"), home)
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec is not None:
            result.submit(getattr(item, "originalname", item.name), dict(callspec.params))
    yield result
    result.pool.shutdown(wait=True)


def shown(data: bytes, limit: int = 600) -> str:
    text = repr(data[:limit])
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


# ---------------------------------------------------------------- the cases

PY_TWO_LINES = python_stage("print('first'); print('second')")

# (id, pipeline, stdin bytes or None, bug reason or None)
CASES: list[tuple[str, str, bytes | None, str | None]] = [
    # -- quoting
    ("quote-single", "echo 'single  quoted | & ; < > $HOME *.txt'", None, None),
    ("quote-double", 'echo "double  quoted | & ; < > text"', None, None),
    ("quote-backslash", r"echo a\ b\|c \> \& \; \< d\\e", None, None),
    ("quote-empty-strings", "printf '[%s]\\n' \"\" '' x \"\"''", None, None),
    ("quote-adjacent-concat", "printf '[%s]\\n' \"a\"'b'c\"d e\"f", None, None),
    ("quote-double-escapes", r'''printf '[%s]\n' "q\"uote \$HOME back\\slash tick\` keep\n \x"''', None, None),
    ("quote-single-in-single", r"printf '[%s]\n' 'it'\''s'", None, None),
    ("quote-pipe-in-arg", "printf 'a|b\\nc\\n' | grep -F 'a|b'", None, None),
    ("quote-operators-literal", "printf '[%s]\\n' 'semi;colon' \"amp&&and\" 'or||or' '$(not run)' \"2>&1\" '`tick`'",
     None, None),
    ("quote-escaped-expansions", r"""printf '[%s]\n' \$HOME \~ \*.txt "\*" '\$'""", None, None),
    ("quote-hash-inside-word", "echo a#b 'c #d' e\\#f", None, None),
    ("quote-awk-program", "awk '{ print $2 \"|\" $1 }' 'with space.txt'", None, None),
    # -- variables
    ("var-plain", "echo $GREETING", None, None),
    ("var-split-fields", "printf '[%s]\\n' $GREETING", None, None),
    ("var-quoted-no-split", "printf '[%s]\\n' \"$GREETING\"", None, None),
    ("var-braces", "printf '[%s]\\n' ${GREETING}x \"${GREETING}\"y x${EMPTY}y", None, None),
    ("var-leading-trailing-blanks", "printf '[%s]\\n' $SPACED x$SPACED\"y\" \"$SPACED\"", None, None),
    ("var-tabs-newlines", "printf '[%s]\\n' $TABS \"$TABS\"", None, None),
    ("var-unset", "printf '[%s]\\n' $UNSET_VAR \"$UNSET_VAR\" ${UNSET_VAR} pre${UNSET_VAR}post", None, None),
    ("var-empty-drops-word", "printf '[%s]\\n' $EMPTY a $EMPTY \"$EMPTY\"", None, None),
    ("var-name-boundaries", "printf '[%s]\\n' $GREETING_x $GREETING-x $GREETING.x", None, None),
    ("var-lone-dollar", "printf '[%s]\\n' $ a$ \"$\" \"a $ b\"", None, None),
    ("var-unquoted-is-globbed", "printf '[%s]\\n' $PAT", None, None),
    ("var-quoted-not-globbed", "printf '[%s]\\n' \"$PAT\"", None, None),
    ("var-file-with-space-quoted", "cat \"$FILE\" | tr a-z A-Z", None, None),
    ("var-file-with-space-unquoted", "cat $FILE | wc -l", None, None),
    # -- tilde
    ("tilde-forms", "printf '[%s]\\n' ~ ~/sub \"~\" \\~ a~ ~nosuchuser1234 '~'/x", None, None),
    ("tilde-user", "printf '[%s]\\n' ~root ~root/x", None, None),
    ("tilde-read-file", "cat ~/note.txt | wc -c", None, None),
    ("tilde-in-assignment", "X=~/note.txt sh -c 'cat \"$X\"'", None,
     "bash expands '~' after '=' in a NAME=value prefix; ppipe passes '~/note.txt' on literally"),
    # -- globs
    ("glob-star-sorted", "printf '[%s]\\n' *.txt", None, None),
    ("glob-question", "printf '[%s]\\n' ?.txt", None, None),
    ("glob-brackets", "printf '[%s]\\n' [ab].txt [!a].txt [A-Z]*", None, None),
    ("glob-no-match-literal", "printf '[%s]\\n' *.nomatch no?such [x]y", None, None),
    ("glob-quoted-literal", "printf '[%s]\\n' \"*.txt\" '?.txt' \\*.txt \"[ab]\".txt", None, None),
    ("glob-partly-quoted", "printf '[%s]\\n' \"with \"* 'a'*", None, None),
    ("glob-subdir", "printf '[%s]\\n' sub/* */*.log", None, None),
    ("glob-star-skips-hidden", "printf '[%s]\\n' *", None, None),
    ("glob-case-sensitive", "printf '[%s]\\n' *.TXT", None, None),
    ("glob-cat-all", "cat *.txt | sort | uniq -c | sort -rn", None, None),
    # -- NAME=value per stage
    ("assign-simple", "FOO=1 sh -c 'echo $FOO'", None, None),
    ("assign-several", "FOO=1 BAR=\"two  words\" sh -c 'echo \"$FOO|$BAR\"'", None, None),
    ("assign-no-split-no-glob", "A=$GREETING X=*.txt sh -c 'printf \"[%s]\\n\" \"$A\" \"$X\"'", None, None),
    ("assign-only-its-stage", "FOO=1 true | sh -c 'echo ${FOO:-unset}'", None, None),
    ("assign-overrides-env", "GREETING=override sh -c 'echo $GREETING'", None, None),
    ("assign-not-seen-by-own-args", "GREETING=new printf '[%s]\\n' \"$GREETING\"", None, None),
    ("assign-after-command-is-arg", "sh -c 'echo \"$1\"' sh FOO=1", None, None),
    ("assign-quoted-is-command", "\"FOO=1\" true", None, None),
    # -- redirections
    ("redir-out", "sort lines.txt > out.txt", None, None),
    ("redir-append", "printf 'extra\\n' >> lines.txt", None, None),
    ("redir-in-and-out", "sort < lines.txt | uniq -c > counts.txt", None, None),
    ("redir-first-word", "< lines.txt sort -r", None, None),
    ("redir-no-spaces", "echo a2>x.out", None, None),
    ("redir-quoted-names", "cat < \"with space.txt\" > 'out file.txt'", None, None),
    ("redir-glob-target", "cat < wi*.txt", None, None),
    ("redir-var-target", "cat < \"$FILE\" > \"$FILE.copy\"", None, None),
    ("redir-two-outputs", "echo hi > first.out > second.out", None, None),
    ("redir-stderr-file", "ls nonexistent-file 2> err.txt", None, None),
    ("redir-stderr-append", "ls nonexistent-file 2>> lines.txt", None, None),
    ("redir-stderr-to-stdout", "ls nonexistent-file lines.txt 2>&1 | sort", None, None),
    ("redir-both-to-file", "ls nonexistent-file lines.txt &> all.txt", None, None),
    ("redir-both-append", "ls nonexistent-file lines.txt &>> lines.txt", None, None),
    ("redir-pipe-both", "ls nonexistent-file lines.txt |& sort", None, None),
    ("redir-pipe-both-middle", "sh -c 'echo out; echo err >&2' |& sort | tr a-z A-Z", None, None),
    ("redir-order-file-then-dup", "ls nonexistent-file lines.txt > out.txt 2>&1", None, None),
    ("redir-order-dup-then-file", "ls nonexistent-file lines.txt 2>&1 > out.txt | tr a-z A-Z", None, None),
    ("redir-stdout-to-stderr", "sh -c 'echo out' >&2 | wc -c", None, None),
    ("redir-stdout-devnull", "sh -c 'echo out; echo err >&2' 2>&1 >/dev/null | wc -c", None, None),
    ("redir-last-stage-to-file", "printf 'x\\n' > out.txt | wc -c", None, None),
    # -- missing files and failing stages
    ("missing-redir-input", "cat < /nonexistent | wc -l", None, None),
    ("missing-redir-only-stage", "wc -l < /nonexistent", None, None),
    ("missing-redir-output-dir", "echo hi > /nonexistent/dir/x | wc -l", None, None),
    ("missing-arg-file", "cat /nonexistent | wc -l", None, None),
    ("ambiguous-redirect-alone", "cat < *.txt", None, None),
    ("ambiguous-redirect-in-pipeline", "cat < *.txt | wc -l", None,
     "bash fails only the stage with the ambiguous redirect (status 1) and still runs 'wc -l', which prints 0; "
     "ppipe refuses the whole pipeline and prints nothing"),
    ("status-false-true", "false | true", None, None),
    ("status-true-false", "true | false", None, None),
    ("status-rightmost-wins", "sh -c 'exit 3' | sh -c 'exit 4'", None, None),
    ("status-left-failure", "sh -c 'exit 3' | true", None, None),
    ("status-three-stages", "sh -c 'exit 5' | sh -c 'exit 6' | cat", None, None),
    ("status-middle-failure", "seq 3 | sh -c 'cat; exit 7' | cat", None, None),
    ("status-grep-no-match", "grep zzz lines.txt | wc -l", None, None),
    ("status-signal", "sh -c 'kill -TERM $$' | cat", None, None),
    ("status-not-found", "nosuchcommand-xyz", None, None),
    ("status-not-found-last", "true | nosuchcommand-xyz", None, None),
    ("status-not-executable", "./noexec.sh", None, None),
    # -- early-exiting consumers whose producer has already written everything
    ("early-head", "seq 1 100 | head -3", None, None),
    ("early-sed-quit", "cat lines.txt | sed 2q", None, None),
    ("early-grep-m1", "cat lines.txt | grep -m1 apple", None, None),
    ("early-awk-exit", "cat nums.txt | awk 'NR == 2 { print; exit }'", None, None),
    ("early-python-producer", f"{PY_TWO_LINES} | head -1", None, None),
    ("early-true-consumer", "cat nums.txt | sh -c 'read line; echo \"$line\"'", None, None),
    # -- large-ish data
    ("large-sort-tail", "seq 1 200000 | sort -r | tail -3", None, None),
    ("large-awk-sum", "seq 1 200000 | awk '{ s += $1 } END { print s, NR }'", None, None),
    ("large-grep-count", "seq 1 200000 | grep 7 | wc -l", None, None),
    ("large-tr-cut-uniq", "seq 1 200000 | tr 0-9 a-j | cut -c1-2 | sort | uniq -c | sort -rn | tail -4", None, None),
    ("large-sed-md5", "seq 1 200000 | sed 's/0/zero/g' | md5sum", None, None),
    ("large-to-file", "seq 1 200000 | sort -n -r > big.txt", None, None),
    # -- binary data
    ("binary-cat-checksum", "cat data.bin | sha256sum", None, None),
    ("binary-copy-file", "cat < data.bin | cat | cat > copy.bin", None, None),
    ("binary-tr-invert", "head -c 100000 data.bin | tr '\\000-\\377' '\\377-\\000' | md5sum", None, None),
    ("binary-gzip-roundtrip", "cat data.bin | gzip -c -n | gunzip -c | cmp - data.bin", None, None),
    ("binary-stdout", "head -c 5000 data.bin | cat", None, None),
    ("binary-od-tail", "od -An -tx1 data.bin | tail -2", None, None),
    # -- line continuations and comments
    ("layout-backslash-newline", "seq 1 20 \\\n  | grep 1 \\\n  | wc -l", None, None),
    ("layout-newline-after-pipe", "seq 1 20 |\n  grep 2 |\n  wc -l", None, None),
    ("layout-comment-after-pipe", "seq 3 | # count them\n  wc -l", None, None),
    ("layout-trailing-comment", "echo hi # a trailing comment | not a stage", None, None),
    ("layout-continuation-in-word", "echo ab\\\ncd \"ef\\\ngh\" 'ij\\\nkl'", None, None),
    # -- stdin from the test
    ("stdin-sort-uniq", "sort | uniq -c", b"b\na\nb\nc\na\nb\n", None),
    ("stdin-first-stage-only", "tr a-z A-Z | cat", b"hello\nworld\n", None),
    ("stdin-binary", "cat | sha256sum", BINARY, None),
    ("stdin-no-final-newline", "cat | wc -l", b"one\ntwo", None),
    ("stdin-nul-and-cr", "od -c | head -3", b"a\x00b\r\n\xff\xfe\n", None),
    ("stdin-ignored-by-redirect", "cat < nums.txt", b"from stdin\n", None),
    ("stdin-python-stage", python_stage("import sys; sys.stdout.write(sys.stdin.read()[::-1])"), b"abc\ndef", None),
]


def _params() -> list[Any]:
    params = []
    for case_id, pipeline, stdin, bug in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=f"ppipe bug: {bug}")] if bug else []
        params.append(pytest.param(pipeline, stdin, id=case_id, marks=marks))
    return params


@pytest.mark.parametrize(("pipeline", "stdin"), _params())
def test_same_as_bash(runs: Runs, pipeline: str, stdin: bytes | None) -> None:
    by_bash, by_ppipe = runs.get("test_same_as_bash", pipeline=pipeline, stdin=stdin)
    context = f"\npipeline: {pipeline!r}\nbash stderr: {shown(by_bash.stderr)}\nppipe stderr: {shown(by_ppipe.stderr)}"
    assert b"Traceback" not in by_ppipe.stderr, context
    assert by_ppipe.stdout == by_bash.stdout, (
        f"stdout differs\nbash:  {shown(by_bash.stdout)}\nppipe: {shown(by_ppipe.stdout)}{context}")
    assert by_ppipe.status == by_bash.status, (
        f"status differs: bash {by_bash.status}, ppipe {by_ppipe.status}{context}")
    assert by_ppipe.files == by_bash.files, f"files differ{context}"


def test_case_ids_are_unique() -> None:
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


# ---------------------------------------------------------------- the documented difference


@pytest.mark.parametrize("pipeline", [
    pytest.param("yes | head -1", id="yes-head"),
    pytest.param("seq 1 10000000 | head -3", id="seq-head"),
    pytest.param("cat /dev/zero | head -c 10", id="zero-head-c"),
])
def test_sigpipe_is_not_a_failure(runs: Runs, pipeline: str) -> None:
    """bash -o pipefail reports the producer's SIGPIPE as 141; ppipe does not count it as a failure."""
    by_bash, by_ppipe = runs.get("test_sigpipe_is_not_a_failure", pipeline=pipeline)
    assert by_bash.status == 141
    assert by_ppipe.status == 0, shown(by_ppipe.stderr)
    assert by_ppipe.stdout == by_bash.stdout
    assert b"Traceback" not in by_ppipe.stderr


# ---------------------------------------------------------------- never a traceback


@pytest.mark.parametrize("pipeline", [
    pytest.param("", id="empty"),
    pytest.param("echo 'unclosed", id="unclosed-quote"),
    pytest.param("seq 3 || wc -l", id="or-list"),
    pytest.param("| wc -l", id="leading-pipe"),
    pytest.param("echo hi >", id="missing-target"),
    pytest.param("echo $(ls) `ls`", id="command-substitution"),
    pytest.param("echo ${X:-y}", id="parameter-expansion"),
    pytest.param("cat <<EOF", id="here-document"),
    pytest.param("echo hi 3> f", id="fd-3"),
    pytest.param("cat < *.txt | nosuchcommand-xyz", id="ambiguous-and-missing"),
])
def test_bad_input_never_shows_a_traceback(tmp_cwd: Path, pipeline: str) -> None:
    for name in ("a.txt", "b.txt"):
        Path(name).write_text(name)
    done = ppipe(pipeline)
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.stderr.strip(), "a failing run says why"

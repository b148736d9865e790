"""ppipe's language against ``bash -o pipefail -c``, where a shell conformance run found them apart.

Each case runs the same text under bash and through the installed ``ppipe``,
in the same freshly made directory, with the same environment (C locale, a
known ``HOME``, the case's variables): stdout and the exit status must be
equal. Then the text ppipe refuses on purpose, each with its one
``ppipe:`` line, status 2 and a hint; and the forms of the same words that
bash reads as ordinary words, which ppipe must run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ppipe import parse as ppipe_parse

from helpers import ENV, ppipe

#: Names every POSIX class has something to match, in the C locale.
FILES = ["!bang", "#hash", "Eel", "eel", "1one", " space", "\ttab", "\x01ctl", "\x7fdel", "~tilde", "_u", "Ff"]
FILES += ["a*b.txt", "ab.txt", "a\\b", "]z", "x.txt", "sub/one.log"]
LONG = "a" * 300  # longer than NAME_MAX (255)


def prepare(directory: Path) -> None:
    for name in FILES:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n")
    (directory / "home").mkdir()
    (directory / "bin").mkdir()
    for word in ("if", "do", "while", "for", "!", "[[", "time"):  # programs named as reserved words
        (directory / "bin" / word).write_text(f'#!/bin/sh\ncat; echo "{word}" "$@"\n')
        (directory / "bin" / word).chmod(0o755)


def environment(directory: Path, variables: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in ENV.items() if not k.startswith(("PPQ", "V_"))}
    path = f"{directory / 'bin'}{os.pathsep}{env['PATH']}"
    return {**env, "HOME": str(directory / "home"), "PATH": path, **variables}


def both(text: str, tmp_path: Path, variables: dict[str, str]) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    """The text run by bash, then by ppipe, each in a fresh copy of the directory at the same path."""
    directory = tmp_path / "case"
    runs = []
    for runner in ("bash", "ppipe"):
        directory.mkdir()
        prepare(directory)
        env = environment(directory, variables)
        if runner == "bash":
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", text], capture_output=True, cwd=directory, env=env, timeout=60
            )
        else:
            done = ppipe(text, cwd=str(directory), env=env)
        runs.append(done)
        subprocess.run(["rm", "-rf", str(directory)], check=True)
    return tuple(runs)


CLASSES = ["alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "xdigit"]

# (id, text, variables)
CASES: list[tuple[str, str, dict[str, str]]] = [
    # -- a prefix assignment sees the ones before it, the words and redirections do not
    ("assign-sees-earlier", 'PPQ_FOO=foo PPQ_BAR="[$PPQ_FOO]" sh -c \'echo "$PPQ_BAR"\'', {}),
    ("assign-chain", "PPQ_X=1 PPQ_X=2$PPQ_X PPQ_Y=$PPQ_X$PPQ_X sh -c 'echo $PPQ_X $PPQ_Y'", {}),
    ("assign-home-then-tilde", "HOME=/h1 PPQ_Y=~/a:~ sh -c 'echo $PPQ_Y'", {}),
    ("assign-empty-home", "HOME= PPQ_Y=~/a sh -c 'echo \"[$PPQ_Y]\"'", {}),
    ("assign-not-seen-by-words", "PPQ_FOO=x printf '[%s]\\n' \"$PPQ_FOO\" $PPQ_FOO", {}),
    ("assign-not-seen-by-redirection", "PPQ_FOO=x sh -c 'echo hi' 2> \"$PPQ_FOO\"", {}),
    # -- POSIX classes, all twelve, alone and mixed
    *((f"class-{name}", f"printf '[%s]\\n' [[:{name}:]]*", {}) for name in CLASSES),
    ("class-mixed", "printf '[%s]\\n' [[:punct:]E]* [[:digit:][:upper:]]* [![:alnum:]]*", {}),
    ("class-unknown", "printf '[%s]\\n' [[:nosuch:]]* [[:nosuch:]x]* [![:nosuch:]]x*", {}),
    ("class-edges", "printf '[%s]\\n' [:alpha:] [[:alpha:] [[:alpha:]]]* []z]* [[:punct:]-]*", {}),
    # -- a backslash from an unquoted expansion, in a glob
    ("backslash-escapes-star", "printf '[%s]\\n' x/$V_A $V_A", {"V_A": "*\\*b.txt"}),
    ("backslash-escapes-letter", "printf '[%s]\\n' $V_A", {"V_A": "\\a*"}),
    ("backslash-no-glob-kept", "printf '[%s]\\n' $V_A $V_B", {"V_A": "a\\*b.txt", "V_B": "a\\\\b"}),
    ("backslash-in-bracket", "printf '[%s]\\n' $V_A $V_B", {"V_A": "[\\]]*", "V_B": "[a]\\\\b"}),
    ("backslash-trailing", "printf '[%s]\\n' $V_A $V_B", {"V_A": "a*\\", "V_B": "*\\.txt"}),
    ("backslash-quoted-stays", "printf '[%s]\\n' \"$V_A\" $V_A\\*", {"V_A": "a\\"}),
    # -- ~ in words that look like assignments
    ("tilde-assignment-like", "printf '[%s]\\n' x=~ x=~/a:~/b a=b:~ _=~ x+=~ x=~root x=~nosuchuser1:~", {}),
    ("tilde-not-assignment", "printf '[%s]\\n' --o=~ 1x=~ x=a~ \\'x\\'=~ x\\=~ x=\\~ \"x=~\" x=~\"/q\" x=~$V_A", {}),
    ("tilde-after-variable", "printf '[%s]\\n' x=$V_A:~ x=a\":\"~", {"V_A": "v"}),
    # -- NAME_MAX and other names that cannot be run
    ("name-max-path", f"./{LONG}", {}),
    ("name-max-absolute", f"/tmp/{LONG}/x", {}),
    ("name-max-empty-path", f"PATH= {LONG}", {}),
    ("name-max-searched", f"{LONG}", {}),
    ("file-as-directory", "./x.txt/run", {}),
    # -- line continuations after $, and reserved words that are ordinary words
    ("continuation-after-dollar", "printf '[%s]\\n' $\\\nHOME \"$\\\nV_A\" ${V_\\\nA} $V\\\n_A", {"V_A": "v"}),
    ("reserved-quoted-escaped", "'if' x | \\do y | \"[[\" z | \\time -a", {}),
    ("reserved-after-assignment-or-redirection", "PPQ=1 while x | 2>/dev/null for y | PPQ=1 ! z | time t", {}),
    ("reserved-inside-words", "printf '[%s]\\n' if then !x time '!' | cat", {}),
]


@pytest.mark.parametrize(("text", "variables"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_same_as_bash(tmp_path: Path, text: str, variables: dict[str, str]) -> None:
    by_bash, by_ppipe = both(text, tmp_path, variables)
    assert b"Traceback" not in by_ppipe.stderr
    assert (by_ppipe.stdout, by_ppipe.returncode) == (by_bash.stdout, by_bash.returncode), (
        by_bash.stderr,
        by_ppipe.stderr,
    )


def test_classes_match_what_they_should(tmp_path: Path) -> None:
    """Not only bash's answer: a case above could agree by both matching nothing."""
    prepare(tmp_path)
    done = ppipe("printf '[%s]\\n' [[:punct:]]* [[:cntrl:]]*", cwd=str(tmp_path))
    punct = b"[!bang]\n[#hash]\n[]z]\n[_u]\n[~tilde]\n"
    assert done.stdout == punct + b"[\x01ctl]\n[\ttab]\n[\x7fdel]\n"


# (id, text, what the message says, what the hint says)
REFUSED: list[tuple[str, str, str, str]] = [
    ("old-arithmetic", "echo $[1+2]", "'$[' (old arithmetic expansion)", "sh -c"),
    ("old-arithmetic-star", "echo $[2*3] | cat", "'$[' (old arithmetic expansion)", "sh -c"),
    ("continued-special", "echo $\\\n?", "'$?' is a shell special parameter", "sh -c"),
    ("continued-arithmetic", "echo $\\\n((1))", "'$((' (arithmetic expansion)", "sh -c"),
    ("time", "time ls | wc -l", "'time' (time the pipeline)", "--report FILE"),
    ("time-in-group", "{ time ls ; cat }", "'time' (time the pipeline)", "/usr/bin/time"),
    ("bang", "echo x | ! cat", "'!' (negate the status)", "-grep x"),
    ("bang-after-marker", "-! cat", "'!' (negate the status)", "-grep x"),
    *(
        (f"reserved-{word}", f"{word} x", f"'{word}' is a shell reserved word", f"quote it ('{word}')")
        for word in ("if", "then", "else", "elif", "fi", "case", "esac", "in", "while", "until", "for")
    ),
    *(
        (f"reserved-{word}", f"echo x | {word} y", f"'{word}' is a shell reserved word", "sh -c")
        for word in ("select", "do", "done", "function", "coproc", "[[", "]]")
    ),
    ("nothing-to-run", "foo=alive! $PPQ_UNSET", "the command expanded to nothing", "set the variable"),
]


@pytest.mark.parametrize(("text", "message", "hint"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_with_a_hint(tmp_path: Path, text: str, message: str, hint: str) -> None:
    done = ppipe(text, cwd=str(tmp_path))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2
    assert lines[0].startswith("ppipe: syntax error at column ") and message in lines[0], lines
    hints = [line for line in lines if line.startswith("ppipe: hint: ")]
    assert len(hints) == 1 and hint in done.stderr.decode().split("ppipe: hint: ")[1], lines
    assert done.stdout == b""


def test_time_after_a_pipe_runs_the_program(tmp_path: Path) -> None:
    """bash reads ``time`` as a word after a pipe; so does ppipe (here a script of that name)."""
    (tmp_path / "time").write_text('#!/bin/sh\necho timed "$@"\n')
    (tmp_path / "time").chmod(0o755)
    env = {**ENV, "PATH": f"{tmp_path}{os.pathsep}{ENV['PATH']}"}
    done = ppipe("echo x | time y", cwd=str(tmp_path), env=env)
    assert (done.returncode, done.stdout) == (0, b"timed y\n")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pattern", ["[[:" * 30_000 + "]*", "[a[:" * 30_000 + "*", "[[:]:]" * 20_000])
def test_brackets_that_never_close_cost_linear_time(tmp_path: Path, pattern: str) -> None:
    """Each '[' here starts a bracket that runs on to the end: read one by one that was quadratic (minutes)."""
    (tmp_path / "x").write_text("x")
    assert ppipe_parse(f"printf %s {pattern}", env=ENV, cwd=str(tmp_path)).stage(1).argv[2] == pattern

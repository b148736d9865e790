"""Random pipelines, run by ppipe and by ``bash -o pipefail -c``, compared.

A seeded generator writes pipelines of words made of plain text, single
and double quotes, backslash escapes, ``$VAR``/``${VAR}``, ``~``, globs
(``*``, ``?``, brackets with ranges, negation and POSIX classes, known and
unknown) over a small generated directory, ``NAME=value`` prefixes, pipes
and redirections. Each runs in the same freshly made directory twice, with
the same environment (C locale, a known ``HOME``, random variable values):
under bash, then through :func:`ppipe.run` (real processes, ppipe's own
parser and engine). Stdout, the exit status and every file afterwards must
be equal.

It never generates what ppipe refuses on purpose (README's "Rejected"), nor
a reader that quits early (a producer then dies of SIGPIPE, which ppipe's
status does not count; a documented difference).

Run it by hand: ``python tests/random_pipelines.py --cases 2000 --seed N``
(the seed is printed, so a run can be replayed; ``--show K`` prints case K).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ppipe
from ppipe.errors import PpipeError

#: The generated directory's files: awkward names for globs to meet (classes, escapes, hidden, blanks).
FILES = [
    "a.txt",
    "B.txt",
    "ab.txt",
    "c1",
    "9nine",
    "_under",
    "-dash",
    "+plus",
    "d!e",
    "e]f",
    "f[g",
    "g*h",
    "h?i",
    "sp ace",
    "col:on",
    "back\\slash",
    "tab\tname",
    "ctl\x01x",
    "~tilde",
    ".hidden",
    "Zeta",
    "x=y",
    "sub/one.log",
    "sub/Two.log",
    "sub/.dot",
    "home/note",
    "home/.rc",
]
VARIABLE_VALUES = [
    "a b",
    "*.txt",
    "  x  y ",
    "",
    "[[:upper:]]*",
    "*\\*",
    "\\a*",
    "a\\b",
    "~",
    "x:~",
    "g\\*h",
    "sp ace",
    "col:on",
    "[!a]*",
    "?",
    "*/*.log",
    "-n",
    "a\tb",
    "[[:punct:]]*",
    "back\\\\slash",
    "*[[:digit:]]*",
    "e\\]f",
    "[\\]]*",
    "h\\?i",
    "a\\",
    "*\\",
]
VARIABLES = ["V1", "V2", "V3", "V4"]
CLASSES = [
    "alnum",
    "alpha",
    "blank",
    "cntrl",
    "digit",
    "graph",
    "lower",
    "print",
    "punct",
    "space",
    "upper",
    "xdigit",
    "nosuch",
]
PLAIN = "abcgxXYZ019_.-,+%@=:"
INSIDE_SINGLE = 'ab *?[]$\\"~:x'
INSIDE_DOUBLE = "ab *?[]'~:x"
ESCAPABLE = "*?[] $'\"\\ab~|&;<>(){}#="
FILTERS = ["cat", "sort", "tr a-z A-Z", "wc -l", "grep -c a", "sed s/a/Q/"]
SHOW = 'sh -c \'cat; printf "<%s>\\n" "$A" "$B" "$C" "$@"\' sh'
SHOW_FIRST = 'sh -c \'printf "<%s>\\n" "$A" "$B" "$C" "$@"\' sh'


class Generator:
    """Pipelines from one seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, *choices: str) -> str:
        return self.rng.choice(choices)

    def plain(self) -> str:
        return "".join(self.rng.choice(PLAIN) for _ in range(self.rng.randint(1, 3)))

    def glob(self) -> str:
        r = self.rng.random()
        if r < 0.25:
            return self.pick("*", "?", "**", "*.", ".*")
        if r < 0.5:
            classes = "".join(f"[:{self.rng.choice(CLASSES)}:]" for _ in range(self.rng.randint(1, 2)))
            return f"[{self.pick('', '!', '^')}{classes}{self.pick('', 'E', 'a-c', ']')}]"
        return self.pick("[abc]", "[!a]", "[a-c]", "[]e]", "[*?]", "[A-Z]", "[z-a]", "[", "]", "[\\]]", "[a")

    def variable(self, quoted: bool = False) -> str:
        name = self.rng.choice([*VARIABLES, "UNSET"])
        return self.pick(f"${name}", f"${{{name}}}")

    def part(self) -> str:
        r = self.rng.random()
        if r < 0.2:
            return self.plain()
        if r < 0.4:
            return self.glob()
        if r < 0.55:
            return self.variable()
        if r < 0.65:
            return "'" + "".join(self.rng.choice(INSIDE_SINGLE) for _ in range(self.rng.randint(0, 4))) + "'"
        if r < 0.8:
            inside = []
            for _ in range(self.rng.randint(0, 3)):
                inside.append(
                    self.pick(self.rng.choice(INSIDE_DOUBLE), self.variable(), "\\$", "\\\\", '\\"', "\\x", "\\*")
                )
            return '"' + "".join(inside) + '"'
        if r < 0.95:
            return "\\" + self.rng.choice(ESCAPABLE)
        return self.pick("\\\n", "$\\\nV1", "${V\\\n2}")  # line continuations, removed before anything

    def word(self) -> str:
        r = self.rng.random()
        if r < 0.1:
            head = self.pick("~", "~/", "~/*", "~/.*", "~root", "~nosuchuser", "~/no*")
            tail = self.part() if self.rng.random() < 0.3 else ""
            # '~:' opening a word that is no assignment: a documented difference (bash expands it, then
            # leaves the rest of the word unexpanded)
            return head + ("x" + tail if tail.startswith(":") else tail)
        if r < 0.2:
            tail = self.pick("~", "~/note", "~:~/n*", "a:~", "~$V1", '~"/x"', "$V1:~")
            return self.pick("x=", "_k=", "k+=", "--o=", "1x=") + tail
        if r < 0.3:
            return self.pick("sub/", "*/", "home/", "./") + self.part() + self.part()
        return "".join(self.part() for _ in range(self.rng.randint(1, 3)))

    def words(self, most: int = 4) -> str:
        return " ".join(self.word() for _ in range(self.rng.randint(0, most)))

    def assignments(self) -> str:
        found = []
        for name in self.rng.sample(["A", "B", "C", "HOME"], self.rng.randint(0, 3)):
            value = self.pick("", self.word(), "$A", "[$A]", "~", "~/x:~", "${B}x", '"$C $A"')
            found.append(f"{name}={value}")
        return " ".join(found)

    def redirection(self, stage: int, last: bool) -> str:
        r = self.rng.random()
        # outside the globbed directory: bash opens a stage's files while another may still be globbing
        out = "../out/"
        target = self.pick(f"{out}o{stage}", f"'{out}o {stage}'", f"{out}o{stage}_$V1", f'"{out}o{stage}$V2"')
        if r < 0.15:
            return f"> {target}" if last else f"2> {target}"
        if r < 0.25:
            return f">> {target}" if last else "2>/dev/null"
        if r < 0.3:
            return "2>&1"
        return ""

    def stage(self, index: int, last: bool) -> str:
        parts = []
        if index == 0:
            if self.rng.random() < 0.5:
                parts.append("printf '[%s]\\n' " + self.words())
            else:
                parts += [self.assignments(), SHOW_FIRST, self.words()]
            if self.rng.random() < 0.2:
                parts.append(self.pick("< a.txt", "< 'sp ace'", "< ~/note"))
        elif self.rng.random() < 0.5:
            parts.append(self.rng.choice(FILTERS))
        else:
            parts += [self.assignments(), SHOW, self.words(3)]
        parts.append(self.redirection(index, last))
        return " ".join(part for part in parts if part)

    def pipeline(self) -> str:
        count = self.rng.randint(1, 3)
        text = ""
        for index in range(count):
            if index:
                text += self.pick(" | ", " |& ", "|", "|\n  ")
            text += self.stage(index, index == count - 1)
        return text

    def environment(self, home: Path) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "HOME": str(home)}
        env.update({name: self.rng.choice(VARIABLE_VALUES) for name in VARIABLES})
        return env


@dataclass(frozen=True)
class Outcome:
    stdout: bytes
    status: int
    files: dict[str, bytes]


def prepare(directory: Path) -> None:
    """Makes the case's directory afresh, and an empty ``../out`` beside it for the files redirections write."""
    for place in (directory, directory.parent / "out"):
        shutil.rmtree(place, ignore_errors=True)
        place.mkdir()
    for name in FILES:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\nalpha\nbeta\n")


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under the case's directory and ``../out``, by path, with its content."""
    files = {}
    for root, dirs, names in os.walk(directory.parent):
        for name in dirs:
            files[os.path.relpath(os.path.join(root, name), directory.parent) + "/"] = b""
        for name in names:
            files[os.path.relpath(os.path.join(root, name), directory.parent)] = Path(root, name).read_bytes()
    return files


def by_bash(text: str, directory: Path, env: dict[str, str]) -> Outcome:
    prepare(directory)
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", text],
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    return Outcome(done.stdout, done.returncode, snapshot(directory))


def by_ppipe(text: str, directory: Path, env: dict[str, str]) -> Outcome:
    prepare(directory)
    with open(os.devnull, "wb") as devnull:
        try:
            result = ppipe.run(
                text, input=b"", stdout=ppipe.CAPTURE, stderr=devnull.fileno(), env=env, cwd=str(directory)
            )
            stdout, status = result.stdout or b"", result.exit_status
        except PpipeError as error:
            stdout, status = b"", int(error.status)
    return Outcome(stdout, status, snapshot(directory))


@dataclass(frozen=True)
class Disagreement:
    case: int
    text: str
    env: dict[str, str]
    bash: Outcome
    ppipe: Outcome

    def __str__(self) -> str:
        variables = {name: self.env[name] for name in VARIABLES}
        lines = [f"case {self.case}: {self.text!r}", f"  variables: {variables!r}"]
        for what in ("stdout", "status"):
            if getattr(self.bash, what) != getattr(self.ppipe, what):
                lines.append(f"  {what}: bash {getattr(self.bash, what)!r} ppipe {getattr(self.ppipe, what)!r}")
        if self.bash.files != self.ppipe.files:
            changed = sorted(set(self.bash.files.items()) ^ set(self.ppipe.files.items()))
            lines.append(f"  files differ: {changed[:6]!r}")
        return "\n".join(lines)


def cases(seed: int, count: int, home: Path) -> list[tuple[int, str, dict[str, str]]]:
    """The first ``count`` cases of ``seed``: (number, text, environment with ``home`` as HOME)."""
    generator = Generator(random.Random(seed))
    return [(number, generator.pipeline(), generator.environment(home)) for number in range(count)]


def run(seed: int, count: int, base: Path) -> tuple[list[Disagreement], int]:
    """Runs ``count`` cases of ``seed`` in ``base``; the disagreements, and how many cases ran."""
    directory = base / "case"
    found = []
    for number, text, env in cases(seed, count, directory / "home"):
        expected, got = by_bash(text, directory, env), by_ppipe(text, directory, env)
        if expected != got:
            found.append(Disagreement(number, text, env, expected, got))
    return found, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--seed", type=int, default=None, help="default: a new one, printed")
    parser.add_argument("--show", type=int, default=None, help="print case K of the seed and exit")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    if args.show is not None:
        print(cases(seed, args.show + 1, Path("/home"))[-1][1])
        return 0
    print(f"seed {seed}, {args.cases} cases", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as base:
        found, count = run(seed, args.cases, Path(base))
    for disagreement in found:
        print(disagreement)
    print(f"{count} cases, {len(found)} disagreements, {time.monotonic() - started:.0f} s (seed {seed})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

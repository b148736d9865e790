"""Shell reserved words: where bash reads a command's first word as syntax, ppipe refuses it.

``if``, ``while``, ``for``, ``case``, ``function``, ``[[``... start compound
commands, which ppipe does not run; ``!`` negates a status; ``time`` times
a whole pipeline. Refusing them keeps ``time cmd | ...`` from quietly
running the program ``/usr/bin/time`` on one stage.

As in bash, a reserved word is only ever a whole, unquoted word in a
command's first place: quoted or escaped (``'if'``, ``\\time``), after a
``NAME=value`` or a redirection (``X=1 if``, ``> f if``), or inside a word
(``!x``) it is an ordinary word. ``time`` is reserved only at the start of
a pipeline: ``a | time b`` runs the program ``time``, in bash too.
"""

from __future__ import annotations

from ppipe.language.expansion import Lit
from ppipe.language.lexer import _SH_HINT, Word

#: Words that open or continue compound commands ('{' and '}' are ppipe's groups).
RESERVED_WORDS = frozenset(
    [
        *("if", "then", "else", "elif", "fi", "case", "esac", "in"),
        *("while", "until", "for", "select", "do", "done"),
        *("function", "coproc", "[[", "]]"),
    ]
)


def refusal(word: Word, first_in_pipeline: bool) -> tuple[str, str] | None:
    """``(message, hint)`` when ``word``, a command's first word, is a reserved word there; else None.

    The caller calls this only for a first word with no ``NAME=value`` or
    redirection before it.
    """
    first = word.pieces[0] if len(word.pieces) == 1 else None
    if not isinstance(first, Lit) or first.quoted:
        return None
    text = first.text
    if text == "!":
        return (
            "'!' (negate the status) is shell syntax ppipe does not run",
            "to excuse a stage's failure, prefix it with '-', e.g. -grep x",
        )
    if text == "time" and first_in_pipeline:
        return (
            "'time' (time the pipeline) is shell syntax ppipe does not run",
            "ppipe --report FILE records each stage's times; to time one command, run /usr/bin/time cmd",
        )
    if text in RESERVED_WORDS:
        return (
            f"'{text}' is a shell reserved word: compound commands are shell syntax ppipe does not run",
            f"quote it ('{text}') to run a command of that name; {_SH_HINT}",
        )
    return None

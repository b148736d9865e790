"""The ``ppipe`` console script: one reading of the command line, by typer's rules, without typer.

Typer declares the command line (:mod:`ppipe.cli.options`): its help, completion
and error messages. But building a typer command costs a quarter of a second
at every start (current typer validates options through pydantic), which is
more than the rest of a short run. So :func:`_read` reads the command line by
the rules click (typer's parser) follows, with tables generated from the typer
command (:mod:`ppipe.cli.option_table`), into the same
:class:`~ppipe.cli.config.Config`, through the same
:func:`~ppipe.cli.config.read_value`. What it does not run (``--help``,
``--version``, completion, a typo, a missing value) goes to typer, which
explains it. A test reads random command lines in every spelling both ways and
checks they end alike: the same Config, or the same message and status.
``ppipe report merge FILE...`` and ``ppipe report show FILE`` (the first two
arguments, each a word of its own, which no pipeline can be) go to
:mod:`ppipe.cli.merge` and :mod:`ppipe.cli.show` before either.

A Ctrl-C while Python is still importing ppipe would print a
KeyboardInterrupt traceback from wherever the import was; so the first thing
this module does, when it is the ``ppipe`` program (not a module someone
imported), is to make SIGINT end ppipe at once, killed by it, as a shell
expects. Nothing needs cleaning up before the run; :func:`_main` hands
Ctrl-C back to Python (KeyboardInterrupt, caught by :func:`entry`) before it
sets anything up; a KeyboardInterrupt that an import turned into another
exception still ends ppipe by SIGINT, never as an internal error. Start-up
before this module runs (the interpreter, its ``site`` and ``.pth`` files,
the console script's one import, ``scripts/ppipe``) is beyond any of
ppipe's code.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # mypy takes this name as typing's; importing typing would cost start-up time
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Sequence
else:
    # The C module the interpreter has loaded already: importing ``signal`` itself would take
    # half a millisecond during which a Ctrl-C still prints a traceback.
    import _signal


def _ends_at_once(signum: int, frame: object) -> None:
    """The SIGINT handler during start-up: ppipe dies of the signal, quietly."""
    _die_of(signum)


def _interrupt_ends_at_once() -> None:
    """Until :func:`_interrupts_raise`, SIGINT ends ppipe at once; an ignored SIGINT (``nohup``) stays ignored.

    The console script puts a handler of its own in place before ppipe's packages import (a function
    marked ``ppipe_start_up``); this one takes over from it, as from Python's.
    """
    current = _signal.getsignal(_signal.SIGINT)
    if current is _signal.default_int_handler or getattr(current, "ppipe_start_up", False):
        _signal.signal(_signal.SIGINT, _ends_at_once)


def _interrupts_raise() -> None:
    """From here a Ctrl-C raises KeyboardInterrupt, so that what the run sets up (the view) is put back on the way
    out; :func:`entry` catches it and dies of SIGINT. The run's engine puts its own handler in place while
    stages run, and this one back after."""
    if _signal.getsignal(_signal.SIGINT) is _ends_at_once:
        sys.unraisablehook = _interrupts_kept
        _signal.signal(_signal.SIGINT, _raise_interrupt)


def _interrupts_kept(unraisable: sys.UnraisableHookArgs) -> None:
    """A KeyboardInterrupt Python could not raise (in a finalizer) is pending, not news: say nothing of it."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _raise_interrupt(signum: int, frame: object) -> None:
    """Python's own SIGINT handler, but not it: ``asyncio.run`` replaces Python's with one that cancels the main
    task, and a cancelled run is not an interrupted one. Noted first, in case Python swallows the exception
    (see :mod:`ppipe.interrupts`)."""
    interrupts.note(signum)
    raise KeyboardInterrupt


def _die_of(sig: int) -> None:
    """Ends ppipe by ``sig`` itself, so that a calling shell sees it (cf. ppipe.cli.printing.reraise).

    It imports nothing: it runs in a signal handler, which may interrupt an import half done, and
    importing that module again would find it half made (``partially initialized module``).
    """
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib.suppress would be an import)
            stream.flush()
        except Exception:  # closed, broken, or interrupted mid-write: nothing to save
            pass
    _signal.signal(sig, _signal.SIG_DFL)
    os.kill(os.getpid(), sig)


# The first thing the program does (the rest of this module only defines things); not when imported.
if os.path.basename(sys.argv[0]) == "ppipe" or sys.argv[0].endswith(os.path.join("ppipe", "__main__.py")):
    _interrupt_ends_at_once()

# Generated from the typer command; imported only now, so that a Ctrl-C while it loads ends ppipe quietly.
from ppipe import interrupts  # noqa: E402
from ppipe.cli import COMPLETE_VAR  # noqa: E402
from ppipe.cli.option_table import ACTIONS, FLAGS, HELP, REPEATED, VALUED  # noqa: E402

#: Every option name the reading knows, for the test that compares it with typer's.
OPTIONS = frozenset({*FLAGS, *VALUED, *ACTIONS})
_KNOWN = OPTIONS | HELP


class _Reading:
    """A command line read by click's rules: ppipe's options, the other words (the pipeline, when there is one)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)  # what typer reads: with ``--`` before a pipeline that starts with a dash
        self.values: dict[str, str | bool | list[str]] = {}  # by Config field, as given
        self.given: list[str] = []  # the option words, as given, for a corrected command line
        self.words: list[str] = []
        self.strays: list[str] = []  # words after the pipeline that look like options but are not ppipe's
        self.for_typer = False  # help, --version or a mistake typer explains: typer reads ``argv``


def _read(argv: Sequence[str]) -> _Reading:
    """``argv`` read by click's rules, as typer reads it: a test checks both readings end alike.

    ``--name=value`` or ``--name value``, the value taken as it is (``--timeout -1``); short options bundled
    (``-q0j4``); the last of a repeated option wins, or all (``--sbatch``); ``--`` ends the options. So does a
    word with one dash and a blank or ``|`` that is not ppipe's options: the pipeline (``ppipe "-grep x | wc"``),
    with a ``--`` before it for typer. After the first word, an unknown ``-x`` is a word: ``ppipe ls -l`` is a
    pipeline that was not quoted, not a typo for one of ppipe's options.
    """
    reading = _Reading(argv)
    at = 0
    while at < len(argv):
        arg = argv[at]
        at += 1
        if arg == "--":
            reading.words += argv[at:]
            break
        options = _options_in(arg) if arg.startswith("-") and arg != "-" else []
        if options is None and arg[1] != "-" and any(c in arg for c in " \t|"):  # the pipeline, a dash first
            reading.argv.insert(at - 1, "--")
            reading.words += argv[at - 1 :]
            break
        if options is None and not reading.words:  # not ppipe's: typer says so
            reading.for_typer = True
            break
        if not options:
            if options is None:
                reading.strays.append(arg)
            reading.words.append(arg)
            continue
        reading.given.append(arg)
        for name, inline in options:
            value = inline
            if name in VALUED and value is None and at < len(argv):
                value = argv[at]
                reading.given.append(value)
                at += 1
            if name in FLAGS and value is None:
                field, flag = FLAGS[name]
                reading.values[field] = flag
            elif name in VALUED and value is not None:
                field = VALUED[name]
                if field in REPEATED:
                    texts = reading.values.setdefault(field, [])
                    assert isinstance(texts, list)
                    texts.append(value)
                else:
                    reading.values[field] = value
            else:  # help, --version, a flag given a value, a value missing
                reading.for_typer = True
    return reading


def _options_in(arg: str) -> list[tuple[str, str | None]] | None:
    """The options in one argument, each with its value if the argument holds it; None if one is not ppipe's.

    As click splits them: the first short option that takes a value takes the rest (``-qj=4``: ``=4``).
    """
    if arg[:2] == "--":
        name, has_value, value = arg.partition("=")
        return [(name, value if has_value else None)] if name in _KNOWN else None
    options: list[tuple[str, str | None]] = []
    for index, letter in enumerate(arg[1:], 2):
        if f"-{letter}" not in _KNOWN:
            return None
        options.append((f"-{letter}", (arg[index:] or None) if f"-{letter}" in VALUED else None))
        if f"-{letter}" in VALUED:
            break
    return options


def unquoted_pipeline(reading: _Reading) -> str:
    """The message for a pipeline given as several words (``ppipe seq 1 3``).

    It shows the command line that was meant, the pipeline quoted as one
    argument. The shell has already taken a ``|`` for itself
    (``ppipe grep x | sort``), so the message says the pipes go inside too.
    """
    import shlex

    text = " ".join(reading.words)
    quoted = f'"{text}"' if not any(c in text for c in '"$`\\!') else shlex.quote(text)
    line = shlex.join(["ppipe", *reading.given]) + (" -- " if text.startswith("-") else " ") + quoted
    strays = f" (ppipe has no option {reading.strays[0]})" if reading.strays else ""
    return f"give the pipeline as one quoted argument, pipes included: {line}{strays}"


def _ensure_standard_descriptors() -> None:
    """Makes sure descriptors 0–2 exist (``ppipe ... >&-``).

    Otherwise the first pipe ppipe creates would take a standard
    descriptor's number and stages would write into each other's pipes. The
    stand-in is opened the wrong way round, so a stage using it still gets
    EBADF, as from the closed descriptor; ``os.open`` takes the lowest free
    number, which is the missing one.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_WRONLY if fd == 0 else os.O_RDONLY)


def entry() -> None:
    """The console script. A Ctrl-C before the run started, and any bug, end
    with one line instead of a traceback (``PPIPE_DEBUG=1`` shows it).

    Everything beyond the standard library is imported inside the ``try``,
    so a Ctrl-C while ppipe is still loading ends it as cleanly as one later.
    """
    _interrupt_ends_at_once()  # already done when this module was imported as the program
    _ensure_standard_descriptors()
    try:
        sys.exit(_main(sys.argv[1:]))
    except KeyboardInterrupt:
        _die_of(_signal.SIGINT)
    except Exception as error:
        # A Ctrl-C raised inside an import may come out as another exception: Python wraps what a class
        # body's __set_name__ raises in a RuntimeError (a dataclass's fields), and a module it left half
        # made raises AttributeError later. The signal was noted when it came: it, not a bug, ends ppipe.
        if interrupts.pending():
            _die_of(interrupts.take()[0])
        if os.environ.get("PPIPE_DEBUG"):
            raise
        from ppipe.cli.printing import print_error

        print_error([f"internal error: {error!r}", "  this is a bug in ppipe; PPIPE_DEBUG=1 shows the traceback"])
        sys.exit(1)


def _main(argv: list[str]) -> int:
    """The exit status of the command line ``argv``: its run, a usage error, or typer's answer."""
    from ppipe.cli.printing import print_error, print_out

    if argv == ["--version"]:
        from ppipe import __version__

        return print_out(f"ppipe {__version__}\n")
    completing = COMPLETE_VAR in os.environ
    if completing:
        from ppipe.cli.completion import report_answer

        answer = report_answer(os.environ)
        if answer is not None:  # ppipe report ...: not typer's command
            return print_out(answer + "\n")
    if not completing and argv[:2] in (["report", "merge"], ["report", "show"]):  # never a pipeline: that is one word
        from ppipe.cli import merge, show

        _interrupts_raise()
        subcommand = merge.main if argv[1] == "merge" else show.main
        return subcommand(argv[2:])
    reading = _read(argv)
    if not completing and not reading.for_typer and reading.words:
        if len(reading.words) > 1:
            print_error([unquoted_pipeline(reading)])
            return 2
        from ppipe.cli.config import config_from
        from ppipe.errors import UsageError

        try:  # the values in the order typer reads them too: each option where it first appears
            config = config_from(reading.words[0], reading.values)
        except UsageError as error:
            print_error(str(error).splitlines())
            return error.status
        _interrupts_raise()
        from ppipe.cli.command import run_command

        return run_command(config)
    _interrupts_raise()
    return _with_typer(reading.argv)


def _with_typer(argv: list[str]) -> int:
    """Typer reads the command line: help, completion, and every error in one ``ppipe:`` sentence."""
    import typer.main

    from ppipe.cli.options import app
    from ppipe.cli.printing import print_error
    from ppipe.cli.typer_internals import init_completion, usage_error
    from ppipe.errors import PpipeError

    click_exception = usage_error()
    if COMPLETE_VAR in os.environ:
        init_completion()
    try:
        status = typer.main.get_command(app).main(argv, prog_name="ppipe", standalone_mode=False)
    except click_exception as error:
        if not argv:  # no arguments at all: the help, as a usage error (click's NoArgsIsHelpError shows it)
            error.show()
            return 2
        print_error([_sentence(error.format_message())])
        return error.exit_code
    except PpipeError as error:  # a bad option value, read by ppipe.cli.config.read_value
        print_error(str(error).splitlines())
        return error.status
    return status if isinstance(status, int) else 0


def _sentence(message: str) -> str:
    """Click's message as one of ppipe's lines: ``No such option: -x.`` → ``no such option: -x (see ppipe -h)``."""
    first = message[:1].lower() if message[1:2].islower() else message[:1]
    return f"{first}{message[1:].rstrip('.')} (see ppipe -h)"

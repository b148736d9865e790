"""The ``ppipe`` console script: a fast path for well-formed command lines, typer for the rest.

Typer declares the command line (:mod:`ppipe.cli.options`): its help, completion
and error messages. But building a typer command costs a quarter of a second
at every start (current typer validates options through pydantic), which is
more than the rest of a short run. So :func:`quick_parse` reads the common
case — known options with well-formed values and one pipeline — straight
into the same :class:`~ppipe.cli.config.Config`, and anything else (``--help``,
completion, a typo, a bad value) goes to typer, which explains it. ``ppipe report merge FILE...`` (the
first two arguments, each a word of its own, which no pipeline can be) goes
to :mod:`ppipe.cli.merge` before either. The fast
path knows the options by tables generated from the typer command
(:mod:`ppipe.cli.option_table`), not by a list of its own. A test checks that
both readings agree on every command line the fast one accepts. Both read
option values through :func:`ppipe.cli.config.read_value`, so they accept and
refuse the same values.

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

    from ppipe.cli.config import Config
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

#: Every option name the fast path knows, for the test that compares it with typer's.
OPTIONS = frozenset({*FLAGS, *VALUED, *ACTIONS})
#: Options only typer handles, or a valued option without its value: wherever they are, typer reads the line.
_TYPERS = OPTIONS | HELP


class _Reading:
    """A command line split into ppipe's options and the other words (the pipeline, when there is one)."""

    def __init__(self) -> None:
        self.values: dict[str, str | bool | list[str]] = {}  # by Config field, as given
        self.given: list[str] = []  # the option words, as given, for a corrected command line
        self.words: list[str] = []
        self.strays: list[str] = []  # words after the pipeline that look like options but are not ppipe's


def _read(argv: Sequence[str]) -> _Reading | None:
    """``argv`` split into options and words; None when it asks for typer (help, a typo, a missing value).

    After the first word, an unknown ``-x`` is taken for a word: ``ppipe ls -l`` is a pipeline
    that was not quoted, not a typo for one of ppipe's options.
    """
    reading = _Reading()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, inline = arg.partition("=")
        if arg == "--":
            reading.words += args
            break
        if arg in FLAGS:
            key, flag = FLAGS[arg]
            reading.values[key] = flag
            reading.given.append(arg)
        elif name in VALUED and (has_value or args):
            value = inline if has_value else args.pop(0)
            field = VALUED[name]
            if field in REPEATED:
                texts = reading.values.setdefault(field, [])
                assert isinstance(texts, list)
                texts.append(value)
            else:
                reading.values[field] = value
            reading.given += [arg] if has_value else [arg, value]
        elif arg.startswith("-") and arg != "-" and (not reading.words or name in _TYPERS):
            return None
        else:
            if arg.startswith("-") and arg != "-":
                reading.strays.append(arg)
            reading.words.append(arg)
    return reading


def quick_parse(argv: Sequence[str]) -> Config | None:
    """The :class:`Config` for a plain, well-formed command line, or None to let typer read it."""
    from ppipe.cli.config import config_from
    from ppipe.errors import UsageError

    reading = _read(argv)
    if reading is None or len(reading.words) != 1 or reading.strays:
        return None
    try:
        return config_from(reading.words[0], reading.values)
    except UsageError:
        return None  # typer says why, in the same words


def unquoted_pipeline(argv: Sequence[str]) -> str | None:
    """The message for a pipeline given as several words (``ppipe seq 1 3``), or None.

    It shows the command line that was meant, the pipeline quoted as one
    argument. The shell has already taken a ``|`` for itself
    (``ppipe grep x | sort``), so the message says the pipes go inside too.
    """
    reading = _read(argv)
    if reading is None or len(reading.words) < 2:
        return None
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
    """The exit status of the command line ``argv``: the fast path's run, a usage error, or typer's reading."""
    from ppipe.cli.printing import print_error, print_out

    if argv == ["--version"]:
        from ppipe import __version__

        return print_out(f"ppipe {__version__}\n")
    completing = COMPLETE_VAR in os.environ
    if not completing and argv[:2] == ["report", "merge"]:  # never a pipeline: that is one argument
        from ppipe.cli.merge import main

        _interrupts_raise()
        return main(argv[2:])
    argv = _pipeline_marked(argv)
    config = None if completing else quick_parse(argv)
    unquoted = None if completing or config is not None else unquoted_pipeline(argv)
    if unquoted is not None:
        print_error([unquoted])
        return 2
    _interrupts_raise()
    if config is not None:
        from ppipe.cli.command import run_command

        return run_command(config)
    return _with_typer(argv)


def _pipeline_marked(argv: list[str]) -> list[str]:
    """``argv`` with ``--`` before a pipeline that starts with the ``-`` marker (``ppipe "-grep x | wc -l"``).

    No option of ppipe's is a single dash followed by a word with a blank or
    a ``|`` in it, so such an argument can only be the pipeline; without the
    ``--`` the parsers would read it as options.
    """
    for index, arg in enumerate(argv):
        if arg == "--":
            return argv
        if arg.startswith("-") and not arg.startswith("--") and any(c in arg for c in " \t|"):
            return [*argv[:index], "--", *argv[index:]]
    return argv


def _with_typer(argv: list[str]) -> int:
    """Typer reads the command line: help, completion, and every error in one ``ppipe:`` sentence."""
    import typer.main

    from ppipe.cli.options import app
    from ppipe.cli.printing import print_error
    from ppipe.cli.typer_internals import init_completion, usage_errors
    from ppipe.errors import PpipeError

    click_exception, no_args_is_help = usage_errors()
    if COMPLETE_VAR in os.environ:
        init_completion()
    try:
        status = typer.main.get_command(app).main(argv, prog_name="ppipe", standalone_mode=False)
    except no_args_is_help as error:
        error.show()  # no arguments at all: the help, as a usage error
        return 2
    except click_exception as error:
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

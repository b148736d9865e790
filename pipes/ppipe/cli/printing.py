"""What the command line prints itself: text on stdout, ``ppipe:`` lines on stderr, and dying of a signal.

Kept apart from :mod:`ppipe.cli.command` so that what prints and exits
early (``--version``, an error, an interrupted start) imports nothing else:
this module imports only ``os`` and ``sys``, which Python has loaded before
ppipe's first line runs (``signal`` would bring ``enum``).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's name, for mypy; importing typing would cost start-up time
if TYPE_CHECKING:
    import signal


def print_out(text: str) -> int:
    """Prints on stdout; a reader that left (``--explain ... | head``) or no stdout at all is not an error."""
    if sys.stdout is None:
        return 0
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
    return 0


def print_error(lines: list[str]) -> None:
    """Prints lines on stderr; each that is not an indented detail is prefixed ``ppipe:``."""
    if sys.stderr is None:
        return
    try:
        for line in lines:
            prefix = "" if line.startswith((" ", "ppipe:")) else "ppipe: "
            sys.stderr.write(f"{prefix}{line}\n")
        sys.stderr.flush()
    except OSError:
        pass  # stderr closed or full: the exit status still tells


def reraise(sig: signal.Signals) -> None:
    """Ends ppipe by ``sig`` itself, so that a calling shell sees it (and stops a loop, as for any program)."""
    import signal  # loaded by then: the run imported it

    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)

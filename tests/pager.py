"""A stand-in pager for the tests: like less, it needs the terminal itself.

It says whether its stdout is a terminal, shows the first line it reads,
then waits for ``q`` typed on ``/dev/tty``. Like less, it ignores Ctrl-C.
"""

import os
import signal
import sys
import termios
import tty

signal.signal(signal.SIGINT, signal.SIG_IGN)
print(f"pager: stdout is a terminal: {os.isatty(1)}")
print(f"pager: first line: {sys.stdin.readline().strip()}")
with open("/dev/tty", "rb", buffering=0) as keys:
    saved = termios.tcgetattr(keys)
    tty.setcbreak(keys)  # before the prompt, as less draws once the terminal is its own: the tests read it then
    print("pager: q to quit", flush=True)
    try:
        while keys.read(1) != b"q":
            pass
    finally:
        termios.tcsetattr(keys, termios.TCSADRAIN, saved)
print("pager: bye", flush=True)

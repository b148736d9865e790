"""The ``ppipe report`` subcommands' command lines, each declared once: read by hand, written as help, completed.

``ppipe report merge`` and ``ppipe report show`` are not typer commands:
building typer's costs a quarter of a second, more than a script that calls
them should pay. Each declares its options here as a :class:`Subcommand`,
from which its words are read (:meth:`Subcommand.read`, by the rules the
run's options follow: ``--name value`` or ``--name=value``, ``--`` ending
the options), its ``--help`` is written (:meth:`Subcommand.usage`) and the
shells' completion offers its options (:mod:`ppipe.cli.completion`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ppipe.cli.printing import print_error, print_out
from ppipe.errors import PpipeError, UsageError

#: The help's lines are shorter than this: they fit an 80-column terminal with room to spare.
_HELP_WIDTH = 79


@dataclass(frozen=True)
class Option:
    """One option: its spellings (the last names its value), its help, and ``metavar`` when it takes a value."""

    names: tuple[str, ...]
    help: str
    metavar: str | None = None

    @property
    def key(self) -> str:
        """The name its value is read under: ``--report`` → ``report``."""
        return self.names[-1].lstrip("-")


HELP = Option(("-h", "--help"), "Show this message and exit.")


@dataclass
class Reading:
    """A subcommand's words, read: its options' values by :attr:`Option.key` (True for a flag) and the rest."""

    values: dict[str, str | bool] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)
    help: bool = False


@dataclass(frozen=True)
class Subcommand:
    """``ppipe report NAME``: its ``arguments`` as the usage line names them, what it does in a few words
    (``summary``, for completion) and at length (``description``, for ``--help``), and its options."""

    name: str
    arguments: str
    summary: str
    description: str
    options: tuple[Option, ...]

    def answer(self, argv: Sequence[str], act: Callable[[Reading], int]) -> int:
        """The exit status of ``ppipe report NAME argv``: its ``--help``, or what ``act`` does with the words
        read; a :class:`~ppipe.errors.PpipeError` on the way is printed as its ``ppipe:`` lines."""
        try:
            reading = self.read(argv)
            if reading.help:
                return print_out(self.usage())
            return act(reading)
        except PpipeError as error:
            print_error(str(error).splitlines())
            return error.status

    def usage(self) -> str:
        """The ``--help`` text: the usage line, the description, each option with its help."""
        lines = [f"Usage: ppipe report {self.name} [OPTIONS] {self.arguments}", ""]
        lines += ["  " + line if line else "" for line in self.description.strip("\n").splitlines()]
        lines += ["", "Options:"]
        spellings = [
            ", ".join(option.names) + (f" {option.metavar}" if option.metavar else "") for option in self.options
        ]
        column = max(len(spelling) for spelling in spellings) + 4
        for spelling, option in zip(spellings, self.options, strict=True):
            wrapped = textwrap.wrap(option.help, _HELP_WIDTH - column) or [""]
            lines.append(f"  {spelling:<{column - 2}}{wrapped[0]}")
            lines += [" " * column + more for more in wrapped[1:]]
        return "\n".join(lines) + "\n"

    def read(self, argv: Sequence[str]) -> Reading:
        """``argv`` (the words after the subcommand's name) read: values, arguments, and whether help was asked.

        Raises :class:`UsageError` (status 2) for an option that is not this
        subcommand's or a value missing; ``-h`` before ``--`` is help
        whatever else the words hold.
        """
        reading = Reading()
        options_part = argv[: list(argv).index("--")] if "--" in argv else argv
        if any(word in HELP.names for word in options_part):
            reading.help = True
            return reading
        words = list(argv)
        while words:
            word = words.pop(0)
            name, has_value, inline = word.partition("=")
            option = self._option(name)
            if word == "--":
                reading.arguments += words
                break
            if option is not None and option.metavar is None:
                if has_value:
                    raise UsageError(f"{name} takes no value (see ppipe report {self.name} -h)")
                reading.values[option.key] = True
            elif option is not None and option.metavar is not None:
                if not has_value and not words:
                    raise UsageError(f"{name} needs a value (see ppipe report {self.name} -h)")
                reading.values[option.key] = inline if has_value else words.pop(0)
            elif word.startswith("-") and word != "-":
                raise UsageError(f"no such option: {word} (see ppipe report {self.name} -h)")
            else:
                reading.arguments.append(word)
        return reading

    def _option(self, name: str) -> Option | None:
        return next((option for option in self.options if name in option.names), None)

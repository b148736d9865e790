"""``ppipe report merge FILE...``: the reports of a job array's tasks, as the report of one sharded run.

The library does the merging (:mod:`ppipe.merging`); this reads the command
line, writes the merged report (stdout by default: it is for scripts) and
the summary (stderr), and exits as a local ``--fork`` run of the same tasks
would have.

``ppipe report merge`` is recognised only as the first two arguments, each a
word of its own. A pipeline is always one argument (``ppipe seq 1 3`` is
refused), so these words could never have been a pipeline; ``ppipe report``
alone, and ``ppipe "report merge x"``, still run a program called
``report``. The options are read by hand, not by typer: there are three,
and typer would add a quarter of a second to a command that scripts call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ppipe.cli import report
from ppipe.cli.config import read_count
from ppipe.cli.printing import print_error, print_out
from ppipe.errors import ExitStatus, PpipeError, UsageError

USAGE = """\
Usage: ppipe report merge [OPTIONS] REPORT...

  Merge the --report files of a job array's tasks (ppipe --task-id I --tasks N,
  or Slurm's, PBS's... array variables) into the report of one sharded run, as
  ppipe --fork N would have written it. Each shard and attempt names its host
  and job id. A task with several reports (resubmitted) is one shard with an
  attempt per report; a task with none fails the merged run.

  The merged report goes to stdout; a summary of the failures and one line
  counting the tasks go to stderr. Exit status: 0 when every task ended 0,
  else the lowest failed task's status (1 for a task with no report); 2 for
  reports that cannot be read or merged.

Options:
  --report FILE  Write the merged report to FILE instead of stdout ('-':
                 stderr, one line).
  --tasks N      The array's task count, when the reports do not say it.
  -q, --quiet    Print no summary.
  -h, --help     Show this message and exit.
"""


def main(argv: Sequence[str]) -> int:
    """``ppipe report merge`` with ``argv`` (the words after ``merge``); returns the exit status."""
    try:
        return _merge(argv)
    except PpipeError as error:
        print_error(str(error).splitlines())
        return error.status


def _merge(argv: Sequence[str]) -> int:
    from ppipe.merging import merge_results, merge_summary, read_reports
    from ppipe.report import load_report, to_report

    if any(arg in ("-h", "--help") for arg in _options_part(argv)):
        return print_out(USAGE)
    files, destination, tasks, quiet = _read(argv)
    if destination is not None:
        report.check_destination(destination)
    runs = [load_report(data, name=name) for data, name in zip(read_reports(files), files, strict=True)]
    merged = merge_results(runs, tasks=tasks, names=files)
    summary = merge_summary(merged)
    if not quiet:
        print_error(list(summary.lines))
    if destination is None:
        print_out(json.dumps(to_report(merged), indent=2) + "\n")
        return summary.exit_status
    try:
        report.write(to_report(merged), destination)
    except OSError as error:
        print_error([f"cannot write the report to {destination}: {error.strerror}"])
        return summary.exit_status or ExitStatus.FAILURE
    return summary.exit_status


def _options_part(argv: Sequence[str]) -> Sequence[str]:
    return argv[: list(argv).index("--")] if "--" in argv else argv


def _read(argv: Sequence[str]) -> tuple[list[str], str | None, int | None, bool]:
    """The report files, ``--report``'s destination, ``--tasks`` and ``-q``, from ``argv``."""
    files: list[str] = []
    destination: str | None = None
    tasks: int | None = None
    quiet = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, has_value, inline = arg.partition("=")
        if arg == "--":
            files += args
            break
        if arg in ("-q", "--quiet"):
            quiet = True
        elif name in ("--report", "--tasks"):
            if not has_value and not args:
                raise UsageError(f"{name} needs a value (see ppipe report merge -h)")
            value = inline if has_value else args.pop(0)
            if name == "--report":
                destination = value
            else:
                tasks = read_count("--tasks", value, 1, "a whole number of tasks from 1")
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"no such option: {arg} (see ppipe report merge -h)")
        else:
            files.append(arg)
    if not files:
        raise UsageError("ppipe report merge takes the report files to merge (see ppipe report merge -h)")
    return files, destination, tasks, quiet

"""``ppipe report merge FILE...``: the reports of a job array's tasks, as the report of one sharded run.

The library does the merging (:mod:`ppipe.merging`); this reads the command
line, writes the merged report (stdout by default: it is for scripts) and
the summary (stderr), and exits as a local ``--fork`` run of the same tasks
would have.

``ppipe report merge`` is recognised only as the first two arguments, each a
word of its own. A pipeline is always one argument (``ppipe seq 1 3`` is
refused), so these words could never have been a pipeline; ``ppipe report``
alone, and ``ppipe "report merge x"``, still run a program called
``report``. The options are read by hand, not by typer (see
:mod:`ppipe.cli.subcommand`): there are three, and typer would add a quarter
of a second to a command that scripts call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ppipe.cli import report
from ppipe.cli.config import read_count
from ppipe.cli.printing import print_error, print_out
from ppipe.cli.subcommand import HELP, Option, Reading, Subcommand
from ppipe.errors import ExitStatus, UsageError

MERGE = Subcommand(
    "merge",
    "REPORT...",
    "Merge the reports of a job array's tasks into one run's",
    """
Merge the --report files of a job array's tasks (ppipe --task-id I --tasks N,
or Slurm's, PBS's... array variables) into the report of one sharded run, as
ppipe --fork N would have written it. Each shard and attempt names its host
and job id. A task with several reports (resubmitted) is one shard with an
attempt per report; a task with none fails the merged run.

The merged report goes to stdout; a summary of the failures and one line
counting the tasks go to stderr. Exit status: 0 when every task ended 0,
else the lowest failed task's status (1 for a task with no report); 2 for
reports that cannot be read or merged.
""",
    (
        Option(("--report",), "Write the merged report to FILE instead of stdout ('-': stderr, one line).", "FILE"),
        Option(("--tasks",), "The array's task count, when the reports do not say it.", "N"),
        Option(("-q", "--quiet"), "Print no summary."),
        HELP,
    ),
)


def main(argv: Sequence[str]) -> int:
    """``ppipe report merge`` with ``argv`` (the words after ``merge``); returns the exit status."""
    return MERGE.answer(argv, _merge)


def _merge(reading: Reading) -> int:
    from ppipe.merging import merge_results, merge_summary, read_reports
    from ppipe.report import load_report, to_report

    files, destination, tasks, quiet = _read(reading)
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


def _read(reading: Reading) -> tuple[list[str], str | None, int | None, bool]:
    """The report files, ``--report``'s destination, ``--tasks`` and ``-q``, from the words read."""
    if not reading.arguments:
        raise UsageError("ppipe report merge takes the report files to merge (see ppipe report merge -h)")
    destination, tasks = reading.values.get("report"), reading.values.get("tasks")
    assert not isinstance(destination, bool) and not isinstance(tasks, bool), "valued options"
    count = None if tasks is None else read_count("--tasks", tasks, 1, "a whole number of tasks from 1")
    return reading.arguments, destination, count, bool(reading.values.get("quiet"))

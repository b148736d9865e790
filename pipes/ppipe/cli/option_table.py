# Generated from the typer command in ppipe.cli.options by `python -m ppipe.cli.generate`:
# do not edit. A test fails when it no longer matches the command. Generated, not read from typer,
# because building the typer command costs a quarter of a second at every start.
"""The console script reads options by these tables (see ppipe.cli.entry)."""

#: A flag's spelling -> (the Config field, the value it sets).
FLAGS = {
    "--no-fail": ("no_fail", True),
    "--explain": ("explain", True),
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "--lines": ("lines", True),
    "--no-lines": ("lines", False),
    "--pager": ("pager", True),
    "--no-pager": ("pager", False),
    "--fail-fast": ("fail_fast", True),
    "--tag": ("tag", True),
    "--keep-order": ("keep_order", True),
    "-0": ("null", True),
    "--null": ("null", True),
    "--resume": ("resume", True),
    "--resume-failed": ("resume_failed", True),
    "--whole-input": ("whole_input", True),
}
#: A valued option's spelling -> the Config field; its text is read by ppipe.cli.config.read_value.
VALUED = {
    "--timeout": "timeout",
    "--kill-after": "kill_after",
    "--report": "report",
    "--display": "display",
    "--progress": "progress",
    "--progress-interval": "progress_interval",
    "--fork": "fork",
    "--max-restarts": "max_restarts",
    "--tag-format": "tag_format",
    "--block": "block",
    "--each": "each",
    "-j": "jobs",
    "--jobs": "jobs",
    "--recend": "recend",
    "--header": "header",
    "--halt": "halt",
    "--shard-timeout": "shard_timeout",
    "--retry-delay": "retry_delay",
    "--joblog": "joblog",
    "--task-id": "task_id",
    "--tasks": "tasks",
    "--on": "on",
    "--sbatch": "sbatch",
}
#: The Config fields of the options that may be given again and again (their texts kept in order).
REPEATED = frozenset({"sbatch"})
#: Options that typer handles and that end the program: they print and exit.
ACTIONS = frozenset({"--version"})
#: The options that ask for the help.
HELP = frozenset({"-h", "--help"})

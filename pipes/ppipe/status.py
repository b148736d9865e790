"""The exit-status policy: a pure function from stage results to verdicts and a status.

The rules, in order:

1. A stage that exited 0 is ``ok``.
2. A stage ppipe itself signalled (``--timeout``, Ctrl-C) is ``terminated``;
   the run then exits 124 (timeout) or 128+N (signal N), whatever the stages did.
3. A stage killed by SIGPIPE when its consumer went away is
   ``broken-pipe``, as ``yes | head -1`` intends (``consumer_left``); a
   SIGPIPE from a broken pipe of the stage's own is a failure. So is a stage that exited non-zero after it
   failed writing into a closed output, every consumer having exited
   *successfully* (programs that report EPIPE instead of dying of SIGPIPE,
   such as Python scripts). "Failed writing" is the engine's finding
   (``output_closed_early``): bytes were still on their way when ppipe
   closed the output, or the stage said "Broken pipe" on stderr afterwards.
   Neither is a failure — unlike bash's pipefail, which reports 141. A
   producer that was silent (``false | true``) failed on its own.
4. Any other non-zero exit, or a stage that could not start (a redirection
   that could not be opened: status 1, as bash), is ``failed`` — unless the
   stage carries the ``-`` marker or the run is ``--no-fail``: ``ignored``.
5. The run's status is 0 when nothing failed, else the status of the
   rightmost failed stage (bash's pipefail).
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Sequence

from .errors import ExitStatus
from .graph import Graph
from .result import StageResult, Verdict


def judge(graph: Graph, stages: Sequence[StageResult], *, no_fail: bool = False) -> tuple[StageResult, ...]:
    """Returns the stages with their verdicts filled in (rules 1–4)."""
    by_id = {s.stage.id: s for s in stages}
    return tuple(dataclasses.replace(s, verdict=_verdict(graph, s, by_id, no_fail)) for s in stages)


def _verdict(graph: Graph, result: StageResult, by_id: dict[int, StageResult], no_fail: bool) -> Verdict:
    if result.returncode == 0:
        return Verdict.OK
    if result.signalled_by_ppipe:
        return Verdict.TERMINATED
    if result.returncode == -signal.SIGPIPE and result.consumer_left:
        return Verdict.BROKEN_PIPE
    if result.output_closed_early and result.returncode is not None:
        consumers = [by_id.get(e.target) for e in graph.outputs(result.stage.id) if isinstance(e.target, int)]
        if consumers and all(c is not None and c.returncode == 0 for c in consumers):
            return Verdict.BROKEN_PIPE
    if result.stage.may_fail or no_fail:
        return Verdict.IGNORED
    return Verdict.FAILED


def exit_status(stages: Sequence[StageResult], *, timed_out: bool = False,
                interrupted_by: int | None = None) -> int:
    """The run's exit status from judged stages (rule 5, after rule 2's overrides)."""
    if timed_out:
        return ExitStatus.TIMEOUT
    if interrupted_by is not None:
        return 128 + interrupted_by
    failed = [s for s in stages if s.verdict is Verdict.FAILED]
    if not failed:
        return ExitStatus.OK
    rightmost = max(failed, key=lambda s: s.stage.id)
    return rightmost.status or ExitStatus.FAILURE

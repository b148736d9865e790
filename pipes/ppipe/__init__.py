"""ppipe runs shell-style pipelines as a graph of real processes, and sees every edge.

The public API is re-exported here: :func:`parse`, :func:`run`,
:func:`run_async` and their :class:`RunKeywords`, :func:`stream` and
:func:`stream_async` (the output read line by line as it comes), :data:`CAPTURE`, the model,
the result types, the errors, :func:`to_report` and :func:`load_report` (a
result as its JSON report and back), :func:`merge_reports` for the reports of
a job array's tasks, :func:`timeline_of` (a run's attempts over time), and
every type their signatures name (a test checks it).
The names are loaded on first use, so that ``ppipe --version`` or
``--explain`` does not pay for importing tornado and asyncio.
"""

from __future__ import annotations

#: Neither typing nor importlib is imported at run time (importlib loads ``warnings``): this module runs
#: before ppipe's console script can take Ctrl-C over, so it stays as small as it can (mypy reads the
#: imports below as usual).
TYPE_CHECKING = False

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "run": "api",
    "run_async": "api",
    "RunKeywords": "api",
    "PipelineKeywords": "api",
    "stream": "api",
    "stream_async": "api",
    "StreamedRun": "streaming",
    "AsyncStreamedRun": "streaming",
    "CAPTURE": "engine.options",
    "Capture": "engine.options",
    "Sink": "engine.sinks",
    "Halt": "policy",
    "Resume": "shards.joblog",
    "RunObserver": "snapshots",
    "Run": "snapshots",
    "RunSnapshot": "snapshots",
    "ShardSnapshot": "snapshots",
    "ShardState": "snapshots",
    "PipelineSnapshot": "snapshots",
    "StageSnapshot": "snapshots",
    "StageState": "snapshots",
    "Unlisted": "snapshots",
    "Checked": "errors",
    "CommandError": "errors",
    "CommandProblem": "errors",
    "ExitStatus": "errors",
    "PipelineFailed": "errors",
    "PipelineSyntaxError": "errors",
    "PpipeError": "errors",
    "RunNotFinished": "errors",
    "Boundary": "graph",
    "Edge": "graph",
    "Graph": "graph",
    "Redirect": "graph",
    "RedirectOp": "graph",
    "Stage": "graph",
    "ArrayTask": "results",
    "EdgeResult": "flow",
    "RunResult": "results",
    "ShardAttempt": "results",
    "ShardResult": "results",
    "StageFlow": "flow",
    "StopReason": "stops",
    "StopKind": "stops",
    "TaskIdentity": "identity",
    "PipelineResult": "results",
    "StageResult": "results",
    "Verdict": "results",
    "MergeError": "merging",
    "MergeSummary": "merging",
    "merge_reports": "merging",
    "merge_results": "merging",
    "merge_summary": "merging",
    "read_reports": "merging",
    "load_report": "report",
    "to_report": "report",
    "timeline_of": "timeline",
    "Timeline": "timeline",
    "TimelineRow": "timeline",
    "TimelineBar": "timeline",
    "BarEnd": "timeline",
    "RowKind": "timeline",
    "parse": "language.parser",
    "placeholder_values": "language.parser",
    "substitute_placeholders": "language.parser",
}

__all__ = [*_EXPORTS, "__version__"]  # noqa: PLE0604 (ruff cannot see that the keys are strings)

# For mypy, which cannot read the mapping: each name re-exported explicitly (``as``). A test checks that
# these imports are the mapping's, exactly.
if TYPE_CHECKING:
    from typing import Any

    from ppipe.api import PipelineKeywords as PipelineKeywords
    from ppipe.api import RunKeywords as RunKeywords
    from ppipe.api import run as run
    from ppipe.api import run_async as run_async
    from ppipe.api import stream as stream
    from ppipe.api import stream_async as stream_async
    from ppipe.engine.options import CAPTURE as CAPTURE
    from ppipe.engine.options import Capture as Capture
    from ppipe.engine.sinks import Sink as Sink
    from ppipe.errors import Checked as Checked
    from ppipe.errors import CommandError as CommandError
    from ppipe.errors import CommandProblem as CommandProblem
    from ppipe.errors import ExitStatus as ExitStatus
    from ppipe.errors import PipelineFailed as PipelineFailed
    from ppipe.errors import PipelineSyntaxError as PipelineSyntaxError
    from ppipe.errors import PpipeError as PpipeError
    from ppipe.errors import RunNotFinished as RunNotFinished
    from ppipe.flow import EdgeResult as EdgeResult
    from ppipe.flow import StageFlow as StageFlow
    from ppipe.graph import Boundary as Boundary
    from ppipe.graph import Edge as Edge
    from ppipe.graph import Graph as Graph
    from ppipe.graph import Redirect as Redirect
    from ppipe.graph import RedirectOp as RedirectOp
    from ppipe.graph import Stage as Stage
    from ppipe.identity import TaskIdentity as TaskIdentity
    from ppipe.language.parser import parse as parse
    from ppipe.language.parser import placeholder_values as placeholder_values
    from ppipe.language.parser import substitute_placeholders as substitute_placeholders
    from ppipe.merging import MergeError as MergeError
    from ppipe.merging import MergeSummary as MergeSummary
    from ppipe.merging import merge_reports as merge_reports
    from ppipe.merging import merge_results as merge_results
    from ppipe.merging import merge_summary as merge_summary
    from ppipe.merging import read_reports as read_reports
    from ppipe.policy import Halt as Halt
    from ppipe.report import load_report as load_report
    from ppipe.report import to_report as to_report
    from ppipe.results import ArrayTask as ArrayTask
    from ppipe.results import PipelineResult as PipelineResult
    from ppipe.results import RunResult as RunResult
    from ppipe.results import ShardAttempt as ShardAttempt
    from ppipe.results import ShardResult as ShardResult
    from ppipe.results import StageResult as StageResult
    from ppipe.results import Verdict as Verdict
    from ppipe.shards.joblog import Resume as Resume
    from ppipe.snapshots import PipelineSnapshot as PipelineSnapshot
    from ppipe.snapshots import Run as Run
    from ppipe.snapshots import RunObserver as RunObserver
    from ppipe.snapshots import RunSnapshot as RunSnapshot
    from ppipe.snapshots import ShardSnapshot as ShardSnapshot
    from ppipe.snapshots import ShardState as ShardState
    from ppipe.snapshots import StageSnapshot as StageSnapshot
    from ppipe.snapshots import StageState as StageState
    from ppipe.snapshots import Unlisted as Unlisted
    from ppipe.stops import StopKind as StopKind
    from ppipe.stops import StopReason as StopReason
    from ppipe.streaming import AsyncStreamedRun as AsyncStreamedRun
    from ppipe.streaming import StreamedRun as StreamedRun
    from ppipe.timeline import BarEnd as BarEnd
    from ppipe.timeline import RowKind as RowKind
    from ppipe.timeline import Timeline as Timeline
    from ppipe.timeline import TimelineBar as TimelineBar
    from ppipe.timeline import TimelineRow as TimelineRow
    from ppipe.timeline import timeline_of as timeline_of


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ppipe' has no attribute {name!r}")
    # __import__ with a fromlist returns the submodule itself; it is built in, so nothing more is loaded.
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

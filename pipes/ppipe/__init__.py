"""ppipe runs shell-style pipelines as a graph of real processes, and sees every edge.

The public API is re-exported here: :func:`parse`, :func:`run`,
:func:`run_async`, :data:`CAPTURE`, the result types and the errors.
"""

from __future__ import annotations

from .api import run, run_async
from .engine import CAPTURE
from .errors import (
    CommandError,
    ExitStatus,
    PipelineFailed,
    PipelineSyntaxError,
    PpipeError,
)
from .graph import Boundary, Edge, Graph, Redirect, RedirectOp, Stage
from .result import EdgeResult, RunResult, StageResult, Verdict
from .syntax import parse, substitute_placeholders

__version__ = "0.1.0"

__all__ = [
    "CAPTURE",
    "Boundary",
    "CommandError",
    "Edge",
    "EdgeResult",
    "ExitStatus",
    "Graph",
    "PipelineFailed",
    "PipelineSyntaxError",
    "PpipeError",
    "Redirect",
    "RedirectOp",
    "RunResult",
    "Stage",
    "StageResult",
    "Verdict",
    "__version__",
    "parse",
    "run",
    "run_async",
    "substitute_placeholders",
]

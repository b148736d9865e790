"""ppipe runs shell-style pipelines as a graph of real processes, and sees every edge.

The public API is re-exported here: :func:`parse`, :func:`run`,
:func:`run_async`, :data:`CAPTURE`, the model, the result types and the
errors. The names are loaded on first use, so that ``ppipe --version`` or
``--explain`` does not pay for importing tornado and asyncio.
"""

from __future__ import annotations

import importlib

#: typing is not imported at run time: this module runs before ppipe's console script can take
#: Ctrl-C over, so it stays as small as it can (mypy reads the imports below as usual).
TYPE_CHECKING = False

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "run": "api",
    "run_async": "api",
    "CAPTURE": "engine.execution",
    "CommandError": "errors",
    "ExitStatus": "errors",
    "PipelineFailed": "errors",
    "PipelineSyntaxError": "errors",
    "PpipeError": "errors",
    "Boundary": "graph",
    "Edge": "graph",
    "Graph": "graph",
    "Redirect": "graph",
    "RedirectOp": "graph",
    "Stage": "graph",
    "EdgeResult": "results",
    "RunResult": "results",
    "ShardAttempt": "results",
    "ShardResult": "results",
    "PipelineResult": "results",
    "StageResult": "results",
    "Verdict": "results",
    "parse": "language.parser",
    "placeholder_values": "language.parser",
    "substitute_placeholders": "language.parser",
}

__all__ = [
    "CAPTURE",
    "Boundary",
    "CommandError",
    "Edge",
    "EdgeResult",
    "ExitStatus",
    "Graph",
    "PipelineFailed",
    "PipelineResult",
    "PipelineSyntaxError",
    "PpipeError",
    "Redirect",
    "RedirectOp",
    "RunResult",
    "ShardAttempt",
    "ShardResult",
    "Stage",
    "StageResult",
    "Verdict",
    "__version__",
    "parse",
    "placeholder_values",
    "run",
    "run_async",
    "substitute_placeholders",
]

if TYPE_CHECKING:
    from typing import Any

    from ppipe.api import run, run_async
    from ppipe.engine.execution import CAPTURE
    from ppipe.errors import CommandError, ExitStatus, PipelineFailed, PipelineSyntaxError, PpipeError
    from ppipe.graph import Boundary, Edge, Graph, Redirect, RedirectOp, Stage
    from ppipe.language.parser import parse, placeholder_values, substitute_placeholders
    from ppipe.results import EdgeResult, PipelineResult, RunResult, ShardAttempt, ShardResult, StageResult, Verdict


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ppipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""Figures as text, as the view, the summary and the progress lines print them: ``6.9 MB``, ``1.0M``, ``12.0s``.

Plain text, no rich: ``--progress`` lines use these without a terminal.
"""

from __future__ import annotations

from collections.abc import Callable


def human_bytes(count: int | None) -> str:
    """``6.9 MB``: decimal units, as pv and dd print them; ``-`` when unknown."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if round(size, 1) < 1000 or unit == "TB":  # 999.96 kB would print as 1000.0 kB: 1.0 MB
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def short_count(count: int) -> str:
    """``1.0M``: a line count in three to seven characters."""
    if count < 10_000:
        return str(count)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if round(count / size, 1) < 1000 or unit == "G":  # 999.96k would print as 1000.0k: 1.0M
            return f"{count / size:.1f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def count_text(count: int | None, show: Callable[[int], str] = str) -> str:
    """``count`` as ``show`` writes it; ``-`` when it is not known."""
    return "-" if count is None else show(count)


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"

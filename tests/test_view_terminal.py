"""The live view in a real terminal (tmux): output scrolls above it, small and resized terminals, what stays behind."""

from __future__ import annotations

import re
import shlex

from helpers import python_stage
from terminals import Pane, needs_tmux, tmux_pane

pytestmark = needs_tmux

#: What only a live frame shows: a spinner, or the footer's tally of stages.
_FRAME_ONLY = re.compile(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]| stages · |… \d+ more")
#: The summary's header row.
_SUMMARY_HEADER = re.compile(r"^ *# +command +bytes")


def slow_lines(count: int, pause: float) -> str:
    """A stage printing 0 .. count-1, a line every ``pause`` seconds."""
    return python_stage(
        f"import sys, time\nfor i in range({count}):\n    print(i, flush=True)\n    time.sleep({pause})\n"
    )


def assert_clean_scrollback(pane: Pane, numbers: range) -> list[str]:
    """Every output line once and in order, the summary once, and not a row of a live frame anywhere."""
    lines = pane.everything()
    fragments = [line for line in lines if _FRAME_ONLY.search(line)]
    assert not fragments, "\n".join(lines)
    assert sum(1 for line in lines if _SUMMARY_HEADER.search(line)) == 1, "\n".join(lines)
    printed = [int(line) for line in lines if line.isdigit()]
    assert printed == list(numbers), "\n".join(lines)
    return lines


def test_output_scrolls_above_the_view_and_the_scrollback_keeps_the_summary_once() -> None:
    with tmux_pane(100, 30) as pane:
        status = pane.run("clear; ppipe 'seq 1 50000 | cat'")
        assert status == 0
        lines = assert_clean_scrollback(pane, range(1, 50001))
        size = sum(len(f"{n}\n") for n in range(1, 50001))
        assert any(re.search(rf"2 cat +{size} +50000 +{size} +50000", line) for line in lines), "\n".join(lines)


def test_a_ten_row_terminal_keeps_the_footer_and_folds_the_stages() -> None:
    stages = " | ".join([slow_lines(40, 0.05)] + ["cat"] * 7)
    with tmux_pane(40, 10) as pane:
        channel = pane.start(f"clear; ppipe {shlex.quote(stages)}")
        screen = pane.wait_for_screen(" more")
        assert pane.wait(channel) == 0
        frame = [line for line in screen if line and not line.isdigit() and not line.startswith("$")]
        assert len(frame) <= 9, "\n".join(screen)  # a row is always left for the output above
        assert any("8 stages" in line for line in frame), "\n".join(screen)  # the footer
        assert any(re.search(r"… \d+ more", line) for line in frame), "\n".join(screen)
        assert all(len(line) <= 40 for line in screen)
        assert_clean_scrollback(pane, range(40))


def test_a_resize_during_the_run_leaves_no_fragment_of_a_frame() -> None:
    """Narrower, wider, shorter, while the view is up on a screen full of output: tmux re-wraps the frame's
    rows, the view erases them at the width of the moment.

    Each resize comes while the output pauses. A resize that lands between a paint reading the size and
    the terminal taking that paint's bytes cannot be seen in time by any program, and a paint that also
    carries output then leaves the old frame's top above it; with output flowing under a loaded machine
    that window is wide enough to hit (see docs/design.md, "The terminal")."""
    bursts = python_stage(
        "import sys, time\n"
        "for i in range(120):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(1.5 if i % 40 == 39 else 0.01)\n"
    )
    with tmux_pane(100, 30) as pane:
        channel = pane.start(f"clear; ppipe {shlex.quote(bursts + ' | cat | cat')}")
        pane.wait_for_screen("39", whole=True)  # the screen is full of output, which pauses
        pane.resize(60, 30)
        pane.wait_for_screen("79", whole=True)
        pane.resize(90, 30)
        pane.resize(90, 16)
        assert pane.wait(channel) == 0
        assert_clean_scrollback(pane, range(120))


def test_stderr_above_the_view_keeps_its_stage_prefix_and_whole_lines() -> None:
    noisy = python_stage(
        "import sys, time\n"
        "for i in range(30):\n"
        "    print('warn', i, file=sys.stderr, flush=True)\n"
        "    time.sleep(0.02)\n"
    )
    with tmux_pane(100, 30) as pane:
        assert pane.run(f"clear; ppipe {shlex.quote(noisy + ' | cat')} 2>&1") == 0
        lines = pane.everything()
        warnings = [line for line in lines if "warn" in line]
        assert warnings == [f"[1 {noisy.split()[0]}] warn {i}" for i in range(30)], "\n".join(lines)
        assert not [line for line in lines if _FRAME_ONLY.search(line)], "\n".join(lines)

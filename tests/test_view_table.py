"""The live view and its summary rendered to a fixed-width capture console, as rich's own tests do.

Figures are never cut, whatever the width: whole columns go instead, least
useful first, and only a command is ever shortened with an ellipsis. The
bottleneck mark has hysteresis. Snapshots and results are built with large,
realistic figures; the finished runs come from real processes.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console, RenderableType

import ppipe
from ppipe.cli.display import LiveView
from ppipe.flow import StageFlow
from ppipe.launch import run_of
from ppipe.results import RunResult
from ppipe.snapshots import PipelineSnapshot, RunSnapshot, ShardSnapshot, ShardState, StageSnapshot, StageState

WIDTHS = (40, 60, 80, 120)


def plain_snapshot(elapsed: float, stages: tuple[StageSnapshot, ...]) -> RunSnapshot:
    """A plain run's snapshot: one shard, its pipeline's stages."""
    pipeline = PipelineSnapshot(elapsed, stages)
    return RunSnapshot(elapsed, (ShardSnapshot(0, ShardState.RUNNING, None, 1, None, 0, elapsed, pipeline),))


#: A command long enough to be cut at every width; made of one letter so that its cut is recognisable.
LONG_COMMAND = "x" * 150
COMMANDS = (LONG_COMMAND, "wc -l", "grep -i error")


class Clock:
    """A clock the test moves by hand: the view's rates and waits are then exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def console(width: int) -> Console:
    return Console(width=width, height=60, file=io.StringIO(), color_system=None, highlight=False, legacy_windows=False)


def text_of(view: LiveView, renderable: RenderableType) -> list[str]:
    with view.console.capture() as capture:
        view.console.print(renderable)
    return capture.get().splitlines()


def assert_only_commands_cut(lines: list[str], width: int, commands: tuple[str, ...] = COMMANDS) -> None:
    """No line is wider than the terminal, and every ``…`` ends a cut word of a command, nothing else."""
    words = {word for command in commands for word in command.split()}
    for line in lines:
        assert len(line) <= width, line
        for token in line.split():
            cut = token.removesuffix("…")
            assert cut == token or any(word.startswith(cut) for word in words), (token, lines)


figures = st.integers(min_value=0, max_value=10**15)
maybe_figures = st.none() | figures


@st.composite
def flows(draw: st.DrawFn) -> StageFlow:
    """A stage's figures, counted or not, as large as a long run makes them."""
    return StageFlow(
        draw(maybe_figures),
        draw(maybe_figures),
        draw(maybe_figures),
        draw(maybe_figures),
        held=draw(st.floats(0, 10**5)),
    )


@st.composite
def stage_snapshots(draw: st.DrawFn, sid: int) -> StageSnapshot:
    state = draw(st.sampled_from(StageState))
    status = draw(st.integers(1, 255)) if state is StageState.EXITED else None
    signal = draw(st.sampled_from([None, "SIGPIPE", "SIGKILL"])) if state is StageState.EXITED else None
    return StageSnapshot(
        sid,
        draw(st.sampled_from(COMMANDS)),
        state,
        draw(st.none() | st.integers(1, 4194304)),
        status,
        signal,
        draw(flows()),
        draw(st.none() | st.floats(0, 10**6)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.sampled_from(WIDTHS) | st.integers(40, 200),
    stages=st.integers(1, 4).flatmap(lambda n: st.tuples(*(stage_snapshots(i + 1) for i in range(n)))),
    rate=st.integers(0, 10**12),
)
def test_the_live_table_never_cuts_a_figure(width: int, stages: tuple[StageSnapshot, ...], rate: int) -> None:
    clock = Clock()
    view = LiveView(io.StringIO(), console=console(width), clock=clock)
    first = plain_snapshot(10.0, stages)
    view.frame(first)
    clock.now += 0.1
    later = tuple(
        dataclasses.replace(s, flow=dataclasses.replace(s.flow, bytes_out=(s.flow.bytes_out or 0) + rate))
        for s in stages
    )
    lines = text_of(view, view.frame(plain_snapshot(10.1, later)))
    assert_only_commands_cut(lines, width)


def big_snapshot() -> RunSnapshot:
    """Three stages an hour into a 117 GB run, figures as the view gets them."""
    return plain_snapshot(
        3725.0,
        (
            StageSnapshot(
                1,
                "zcat /data/logs/access-2024-*.gz",
                StageState.RUNNING,
                4194303,
                None,
                None,
                StageFlow(None, None, 117_812_345_678, 30_012_345, 0.0),
                3725.0,
            ),
            StageSnapshot(
                2,
                "grep -i error",
                StageState.RUNNING,
                123456,
                None,
                None,
                StageFlow(117_812_345_678, 30_012_345, 26_412_345_678, 987_654_321, 5.0),
                3725.0,
            ),
            StageSnapshot(
                3,
                "wc -l",
                StageState.EXITED,
                123457,
                1,
                "SIGPIPE",
                StageFlow(26_412_345_678, 987_654_321, None, None),
                3725.0,
            ),
        ),
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_narrow_terminals_drop_whole_columns_and_keep_the_important_ones(width: int) -> None:
    view = LiveView(io.StringIO(), console=console(width), clock=Clock())
    snapshot = big_snapshot()
    lines = text_of(view, view.frame(snapshot))
    assert_only_commands_cut(lines, width, tuple(s.command for s in snapshot.stages))
    rows = {line.split()[1]: line for line in lines if re.match(r"^\S+\s+[123] ", line)}
    assert "117.8 GB" in rows["1"] and "26.4 GB" in rows["2"]  # what came out: kept at every width
    if width >= 60:
        assert "30.0M" in rows["1"] and "987.7M" in rows["2"]  # and its lines, but on the narrowest
    assert "SIGPIPE" in rows["3"]
    assert not any(mark in line for line in lines for mark in "≈≥")  # every count shown is exact
    if width >= 120:
        assert "4194303" in rows["1"] and "62m05s" in rows["1"] and "0.22" in rows["2"]


def test_a_rounded_figure_takes_the_next_unit() -> None:
    from ppipe.cli.units import count_text, human_bytes, short_count

    assert (human_bytes(999_950), short_count(999_999_999), short_count(999_960)) == ("1.0 MB", "1.0G", "1.0M")
    assert count_text(None, short_count) == "-"


@pytest.fixture(scope="module")
def finished() -> RunResult:
    result = ppipe.run("seq 3 | cat | wc -l", stdout=ppipe.CAPTURE, count_lines=True)
    assert isinstance(result, RunResult)
    return result


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.sampled_from(WIDTHS) | st.integers(40, 200), data=st.data())
def test_the_summary_never_cuts_a_figure(finished: RunResult, width: int, data: st.DataObject) -> None:
    edges = tuple(
        dataclasses.replace(
            e,
            bytes=data.draw(figures),
            lines=data.draw(maybe_figures),
        )
        for e in finished.edges
    )
    stages = tuple(
        dataclasses.replace(s, stage=dataclasses.replace(s.stage, source=LONG_COMMAND)) if i == 0 else s
        for i, s in enumerate(finished.stages)
    )
    assert finished.local is not None
    result = run_of(dataclasses.replace(finished.local, edges=edges, stages=stages))
    view = LiveView(io.StringIO(), console=console(width))
    lines = text_of(view, view.render_summary(result))
    assert_only_commands_cut(lines, width)
    for edge in edges:
        if edge.counted and width >= 80:
            assert str(edge.bytes) in "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_failure_panel_title_is_never_cut(width: int) -> None:
    missing = "/nonexistent/" + "deeply/nested/" * 3 + "input.txt"
    result = ppipe.run(f"cat < {missing} | wc -l", stdout=ppipe.CAPTURE)
    assert isinstance(result, RunResult) and result.failures
    view = LiveView(io.StringIO(), console=console(width))
    lines = [line.strip("│╭╮╰╯─ ") for line in text_of(view, view.render_summary(result))]
    assert any(line.startswith("stage 1 failed") for line in lines), lines
    # How it ended is there whole (a path longer than the terminal may wrap, never lose a part).
    end = result.failures[0].describe_end()
    assert "".join(end.split()) in "".join("".join(lines).split()), lines


def shard_snapshot(state: ShardState, stage_states: tuple[StageState, ...]) -> ShardSnapshot:
    stages = tuple(
        StageSnapshot(
            i + 1,
            f"stage-{i + 1} --flag",
            s,
            1000 + i,
            3 if s is StageState.EXITED else None,
            None,
            StageFlow(12_345_678_901, None, 9_876_543_210, None),
            61.0,
        )
        for i, s in enumerate(stage_states)
    )
    return ShardSnapshot(0, state, 4194303, 3, 123_456_789_012, 98_765_432_109, 3725.0, PipelineSnapshot(61.0, stages))


@pytest.mark.parametrize("width", WIDTHS)
def test_shard_rows_show_their_states_whole(width: int) -> None:
    view = LiveView(io.StringIO(), console=console(width), clock=Clock())
    snapshot = RunSnapshot(
        3725.0,
        (
            shard_snapshot(ShardState.RUNNING, (StageState.RUNNING, StageState.DONE, StageState.EXITED)),
            dataclasses.replace(shard_snapshot(ShardState.RESTARTING, ()), task_id=1, stages=None),
        ),
        sharded=True,
    )
    lines = text_of(view, view.frame(snapshot))
    assert_only_commands_cut(lines, width, ("stage-1 --flag", "stage-2 --flag", "stage-3 --flag"))
    words = " ".join(lines).split()
    assert {"running", "restarting", "done", "exit"} <= set(words), lines
    assert any(line.startswith("2 shards: 1 running · 1 restarting") for line in lines), lines


# -- the bottleneck mark


def stage(sid: int, held: float, state: StageState = StageState.RUNNING) -> StageSnapshot:
    return StageSnapshot(sid, f"stage{sid}", state, 100 + sid, None, None, StageFlow(1, None, 1, None, held), 1.0)


def marks(waits: list[tuple[float, float, float]]) -> Iterator[int | None]:
    """Feeds the view one frame per 0.1 s in which each stage was waited on for the given seconds."""
    clock = Clock()
    view = LiveView(io.StringIO(), console=console(120), clock=clock)
    held = [0.0, 0.0, 0.0]
    for step in [(0.0, 0.0, 0.0), *waits]:
        held = [h + w for h, w in zip(held, step, strict=True)]
        snapshot = plain_snapshot(clock.now, tuple(stage(i + 1, h) for i, h in enumerate(held)))
        view.frame(snapshot)
        yield view.bottleneck(snapshot)
        clock.now += 0.1


def test_two_stages_waited_on_alike_do_not_swap_the_mark_from_frame_to_frame() -> None:
    alternating = [(0.0, 0.07, 0.06), (0.0, 0.06, 0.07)] * 30
    seen = list(marks(alternating))[10:]
    assert len(set(seen)) == 1 and seen[0] in (2, 3), seen


def test_the_mark_moves_when_the_evidence_does() -> None:
    seen = list(marks([(0.0, 0.08, 0.02)] * 20 + [(0.0, 0.01, 0.09)] * 20 + [(0.0, 0.0, 0.0)] * 30))
    assert seen[15] == 2
    assert seen[35] == 3
    assert seen[-1] is None  # nobody waited on any more


def test_a_stage_that_ends_loses_the_mark() -> None:
    view = LiveView(io.StringIO(), console=console(120), clock=Clock())
    for held in (0.0, 0.08, 0.16, 0.24, 0.32):
        view.frame(plain_snapshot(1.0, (stage(1, 0.0), stage(2, held))))
        view.clock.now += 0.1  # type: ignore[attr-defined]
    assert view.bottleneck(plain_snapshot(1.0, (stage(1, 0.0), stage(2, 0.4)))) == 2
    assert view.bottleneck(plain_snapshot(1.0, (stage(1, 0.0), stage(2, 0.4, StageState.DONE)))) is None


def test_a_stage_writing_in_bursts_never_shows_a_rate_of_zero_nor_jumps() -> None:
    """Output that moves in 1 MB steps every third frame: the rate stays near 3.3 MB/s, never 0 B/s."""
    clock = Clock()
    view = LiveView(io.StringIO(), console=console(120), clock=clock)
    stage = StageSnapshot(1, "burst", StageState.RUNNING, 42, None, None, StageFlow(None, None, 0, None), 0.0)
    rates = []
    for frame in range(60):
        moved = (frame // 3) * 1_000_000
        snapshot = plain_snapshot(frame / 10, (dataclasses.replace(stage, flow=StageFlow(None, None, moved, None)),))
        view.frame(snapshot)
        rates.append(view.stages._rate(snapshot.stages[0]))
        clock.now += 0.1
    shown = rates[10:]
    assert "0 B/s" not in shown, shown
    values = [float(text.split()[0]) for text in shown]
    assert max(values) / min(values) < 1.5, shown  # no jump from frame to frame: one meter, smoothed

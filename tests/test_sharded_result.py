"""A sharded run's result gives stages and edges as a plain run's does: every shard's, and each edge summed."""

from __future__ import annotations

import ppipe
from ppipe.graph import Boundary

DATA = b"".join(b"%d\n" % i for i in range(30_000))
MATCHES = [line for line in DATA.splitlines() if b"1" in line]


def test_a_sharded_run_sums_each_edge_over_its_shards() -> None:
    result = ppipe.run("grep 1 | sort -n", fork=3, input=DATA, stdout=ppipe.CAPTURE, count_lines=True, block=4096)
    assert result.ok and result.sharded
    assert all(len(shard.attempts) == 1 for shard in result.shards)  # every shard had blocks
    # Each shard's own edges, as a plain run gives them.
    per_shard = [shard.edges for shard in result.shards]
    assert all({e.edge.name for e in edges} == {"stdin->1", "1->2", "2->stdout"} for edges in per_shard)
    middle = [next(e for e in edges if e.edge.name == "1->2") for edges in per_shard]
    # The run's: the same edge once, its figures the shards' sum, and what grep let through in all.
    assert result.edge(1, 2).lines == sum(e.lines or 0 for e in middle) == len(MATCHES)
    assert result.edge(1, 2).bytes == sum(len(line) + 1 for line in MATCHES)
    assert result.flow(2).lines_in == len(MATCHES)
    assert [e.edge.name for e in result.edges].count("1->2") == 1
    assert result.edge(Boundary.STDIN, 1) is not None
    # Every shard's stages, in task order.
    assert [s.stage.command for s in result.stages] == ["grep 1", "sort -n"] * 3
    assert result.stages == tuple(stage for shard in result.shards for stage in shard.stages)


def test_a_plain_run_keeps_its_own_edges() -> None:
    result = ppipe.run("grep 1 | sort -n", input=DATA, stdout=ppipe.CAPTURE, count_lines=True)
    assert not result.sharded
    assert result.edge(1, 2).lines == len(MATCHES)
    assert result.edges == result.shards[0].edges and result.stages == result.shards[0].stages

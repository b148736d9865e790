"""``--shard-timeout`` says the limit that ran out, as ``--timeout`` does, not how long stopping took."""

from __future__ import annotations

from helpers import ppipe

#: A stage that ignores SIGTERM: stopping it takes --kill-after's grace too.
STUBBORN = "sh -c 'trap \"\" TERM; sleep 10'"


def test_a_shard_that_ignores_term_timed_out_after_the_limit_not_the_grace() -> None:
    result = ppipe("--fork", "2", "--shard-timeout", "0.5", "--kill-after", "1.5", STUBBORN)
    assert result.returncode == 124
    lines = result.stderr.decode().splitlines()
    assert lines.count("  timed out after 0.5s; every stage was stopped") == 2, lines  # one per shard
    assert not any("after 2" in line or "after 1." in line for line in lines), lines


def test_timeout_still_says_its_own_limit() -> None:
    result = ppipe("--timeout", "0.5", "--kill-after", "1.5", STUBBORN)
    assert result.returncode == 124
    assert result.stderr.decode().splitlines()[-1] == "ppipe: timed out after 0.5s; every stage was stopped"

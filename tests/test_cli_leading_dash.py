"""A pipeline that starts with ``-`` is a pipeline, not an option; an option is still an option."""

from __future__ import annotations

from helpers import ppipe


def test_a_pipeline_starting_with_the_marker_is_not_taken_for_options() -> None:
    for args in (["-false | true"], ["-q", "-false | true"], ["--timeout", "5", "-false|true"]):
        result = ppipe(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert b"no such option" not in result.stderr


def test_a_dash_option_is_still_an_option() -> None:
    assert ppipe("-q", "false").stderr == b""

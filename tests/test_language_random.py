"""Random pipelines agree with bash: ``tests/random_pipelines.py``'s generator, run by the suite.

The default run is short (150 cases, a fixed seed); ``PPIPE_RANDOM_CASES``
and ``PPIPE_RANDOM_SEED`` make it longer or different, e.g.
``PPIPE_RANDOM_CASES=2000 PPIPE_RANDOM_SEED=... pytest tests/test_language_random.py``.
The seed is printed (``-s``) and shown in any failure, so a run can be replayed.
"""

from __future__ import annotations

import os
from pathlib import Path

import random_pipelines

SEED = int(os.environ.get("PPIPE_RANDOM_SEED", "20261207"))
CASES = int(os.environ.get("PPIPE_RANDOM_CASES", "150"))


def test_random_pipelines_agree_with_bash(tmp_path: Path) -> None:
    print(f"random pipelines: seed {SEED}, {CASES} cases")
    found, count = random_pipelines.run(SEED, CASES, tmp_path)
    assert count == CASES
    assert not found, f"seed {SEED}: {len(found)} of {count} disagree with bash\n" + "\n".join(map(str, found[:10]))


def test_the_generator_writes_what_it_means_to(tmp_path: Path) -> None:
    """Its pipelines use each feature it claims, so a quiet run is not a run of plain words."""
    texts = [text for _, text, _ in random_pipelines.cases(SEED, 150, tmp_path)]
    joined = "\n".join(texts)
    for feature in ("'", '"', "\\", "$V", "${", "~", "*", "?", "[[:", "[!", "=", "|", "|&", ">", "<", "2>&1"):
        assert feature in joined, feature
    assert len(set(texts)) > 0.9 * len(texts)  # a few one-stage pipelines may repeat


def test_a_disagreement_is_found_and_shown(tmp_path: Path) -> None:
    """The comparison can fail: a pipeline whose result depends on the run (its own pid) is caught."""
    directory = tmp_path / "case"
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "HOME": str(directory / "home")}
    text = "sh -c 'echo $$'"
    bash = random_pipelines.by_bash(text, directory, env)
    ppipe = random_pipelines.by_ppipe(text, directory, env)
    assert bash.status == ppipe.status == 0
    assert bash != ppipe
    shown = str(random_pipelines.Disagreement(3, text, {**env, "V1": "", "V2": "", "V3": "", "V4": ""}, bash, ppipe))
    assert shown.startswith("case 3: ") and "stdout: bash" in shown

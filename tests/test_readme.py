"""The README's promises: its embedding example is the file it claims to be, runs,
and the quick-start commands name files that exist."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_embedding_example_is_the_example_file():
    blocks = re.findall(r"```python\n(.*?)```", readme(), flags=re.S)
    example = (ROOT / "examples" / "three_nodes.py").read_text()
    assert example in blocks


def test_embedding_example_runs_and_replicates():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "three_nodes.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "leads term" in result.stdout
    assert result.stdout.count("applied ['set x=1', 'set y=2', 'del x']") == 3


def test_quick_start_has_run_and_test_commands():
    text = readme()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, flags=re.S)
    assert len(commands) == 2
    assert "raftcoord cluster up" in commands[0]
    assert "pip install -e ." in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci and "pytest" in ci


def test_trio_cluster_example_keeps_its_state_across_runs(tmp_path):
    # Three durable nodes over loopback TCP, run as a real process twice on one data
    # directory: the second run continues the first's counters.
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "trio_cluster.py"), str(tmp_path)],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert "set run-0=1 (was None)" in outputs[0]
    assert "set run-0=2 (was 1)" in outputs[1]
    assert "'run-2': '2'" in outputs[1]  # read on a follower after the barrier

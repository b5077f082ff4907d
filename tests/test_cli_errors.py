"""Command-line mistakes get one-line errors before any work, and exit statuses mean one thing."""

from __future__ import annotations

import os

import attrs
import click
import pytest
from click.testing import CliRunner

import cli.simulate_cmd as simulate_cmd
from cli import exit_codes
from cli.main import main
from raft import HardState
from raft.disk_storage import DiskStorage
from raft.types import Entry
from simulations.world import Violation

pytestmark = pytest.mark.usefixtures("quiet_raft")

QUICK = ["--duration", "2", "--rate", "10", "--converge-within", "20"]


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def refuses_before_running(monkeypatch) -> list:
    """Record any simulation started, so a test can assert none was."""
    started = []
    monkeypatch.setattr(simulate_cmd, "run_simulation", lambda *a, **k: started.append(a))
    return started


@pytest.mark.parametrize("args, words", [
    (["--seeds", "5..1"], ["'--seeds'", "must not exceed"]),
    (["--seeds", "abc"], ["'--seeds'", "'abc'"]),
    (["--seeds", "1..3", "--seed", "7"], ["--seeds", "--seed"]),
    (["--faults", ""], ["--faults", "empty"]),
    (["--report", "/nonexistent/dir/x.html"], ["--report", "/nonexistent/dir"]),
    (["--shrink", "--plan-out", "/nonexistent/dir/p.json"], ["--plan-out", "/nonexistent/dir"]),
])
def test_mistakes_are_one_line_usage_errors_before_any_run(monkeypatch, args, words):
    started = refuses_before_running(monkeypatch)
    result = invoke("simulate", *args)
    assert result.exit_code == exit_codes.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and all(word in error[0] for word in words), result.output
    assert started == []


def test_report_path_that_is_a_directory_is_refused(monkeypatch, tmp_path):
    started = refuses_before_running(monkeypatch)
    result = invoke("simulate", "--report", str(tmp_path))
    assert result.exit_code == exit_codes.USAGE and "is a directory" in result.output
    assert started == []


def test_written_report_prints_its_path(tmp_path):
    path = tmp_path / "run.html"
    result = invoke("simulate", "--seed", "1", "--report", str(path), *QUICK)
    assert result.exit_code == 0, result.output
    assert f"report: {path}" in result.output and path.exists()


def test_a_sweep_stopped_at_the_first_failure_says_how_many_seeds_it_skipped(monkeypatch):
    real = simulate_cmd.run_simulation

    def fails_at_5(config, scenario="kv", **options):
        result, world = real(config, scenario, **options)
        if config.seed == 5:
            result = attrs.evolve(result, violations=(Violation("election safety", "planted", 1.0),))
        return result, world

    monkeypatch.setattr(simulate_cmd, "run_simulation", fails_at_5)
    result = invoke("simulate", "--seeds", "4..8", *QUICK)
    assert result.exit_code == exit_codes.CHECK_FAILED
    assert "3 of 5 seeds not run" in result.output


def test_ctrl_c_prints_the_finished_seeds_and_exits_130(monkeypatch):
    real = simulate_cmd.run_simulation

    def interrupted_at_6(config, scenario="kv", **options):
        if config.seed == 6:
            raise KeyboardInterrupt
        return real(config, scenario, **options)

    monkeypatch.setattr(simulate_cmd, "run_simulation", interrupted_at_6)
    result = invoke("simulate", "--seeds", "4..9", *QUICK)
    assert result.exit_code == exit_codes.INTERRUPTED, result.output
    assert "interrupted after 2 finished run(s)" in result.output
    assert "2/2 runs ok" in result.output


def test_ctrl_c_in_any_command_exits_130(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_cmd, "run_simulation", interrupted)
    result = invoke("simulate", "--seed", "1", "--shrink")
    assert result.exit_code == exit_codes.INTERRUPTED


def test_an_invalid_plan_file_is_corrupt_data_not_a_failed_check(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text("{not json")
    result = invoke("simulate", "--plan", str(plan))
    assert result.exit_code == exit_codes.CORRUPT_DATA, result.output
    assert "Traceback" not in result.output


def test_bare_raftcoord_prints_help_and_succeeds():
    result = invoke()
    assert result.exit_code == 0
    assert "Commands:" in result.output and "simulate" in result.output and "Exit status" in result.output


def test_every_option_of_every_command_has_help_text():
    missing = []

    def walk(command: click.Command, path: str) -> None:
        missing.extend(f"{path} {param.opts[0]}" for param in command.params
                       if isinstance(param, click.Option) and not param.help and not param.hidden)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(main, "raftcoord")
    assert missing == []


# -- inspect ------------------------------------------------------------------------------


def _node_dir(path) -> str:
    storage = DiskStorage(str(path))
    for i in range(1, 4):  # three records, so damage to the first is not a torn tail
        storage.save(HardState(1, 1, i), [Entry(index=i, term=1, data=b"x" * 64)])
    storage.close()
    return str(path)


def test_inspect_of_a_directory_without_a_log_names_the_node_directories(tmp_path):
    _node_dir(tmp_path / "node-1")
    _node_dir(tmp_path / "node-2")
    result = invoke("inspect", str(tmp_path))
    assert result.exit_code == exit_codes.USAGE
    assert "no Raft log found" in result.output
    assert str(tmp_path / "node-1") in result.output and str(tmp_path / "node-2") in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("inspect", str(empty))
    assert result.exit_code == exit_codes.USAGE and "no Raft log found" in result.output


def test_inspect_of_a_corrupt_log_exits_with_the_corrupt_data_status(tmp_path):
    path = _node_dir(tmp_path / "node")
    assert invoke("inspect", path).exit_code == 0
    segment = os.path.join(path, sorted(n for n in os.listdir(path) if n.startswith("wal-"))[0])
    with open(segment, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = invoke("inspect", path)
    assert result.exit_code == exit_codes.CORRUPT_DATA, result.output
    assert "CORRUPT" in result.output


# -- packaging --------------------------------------------------------------------------------


def test_python_dash_m_raftcoord_runs_the_command_line_from_anywhere(tmp_path):
    import subprocess
    import sys

    # Outside the checkout, so the installed distribution (not the current directory) answers.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "raftcoord", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: raftcoord") and "simulate" in done.stdout


def test_the_distribution_installs_exactly_the_documented_top_level_packages():
    import fnmatch
    import pathlib
    import tomllib

    root = pathlib.Path(__file__).resolve().parent.parent
    find = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    # What setuptools' package discovery picks at the top level: packages matching an include.
    top = {d.name for d in root.iterdir() if (d / "__init__.py").exists()
           and any(fnmatch.fnmatchcase(d.name, pattern) for pattern in find["include"])}
    assert top == {"raftcoord", "raft", "coordinator", "cli", "simulations"}
    readme = (root / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in top)

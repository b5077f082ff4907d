"""The HTML report: what it draws for a run, and that a browser loads it without errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from simulations.faults import FaultConfig
from simulations.report import _minus, render_report, write_report
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig


@pytest.fixture(scope="module")
def crashy_run():
    config = SimConfig(seed=3, duration=20.0, converge_within=20.0,
                       faults=FaultConfig(kinds=frozenset({"crash"}), crash_rate=0.5),
                       workload=WorkloadConfig(rate=10.0))
    return run_simulation(config)


def test_role_bars_stop_while_a_node_is_crashed():
    assert _minus(0.0, 10.0, [(2.0, 3.0), (5.0, 6.0)]) == [(0.0, 2.0), (3.0, 5.0), (6.0, 10.0)]
    assert _minus(2.5, 2.8, [(2.0, 3.0)]) == []


def test_a_restarted_node_keeps_its_term(crashy_run):
    _, world = crashy_run
    restarted = 0
    for node in world.timeline.nodes:
        terms = [term for _, _, term in world.timeline.roles[node]]
        for before, after in zip(terms, terms[1:]):
            assert after >= before, f"node {node} went from term {before} to {after}"
        restarted += sum(1 for _, stop, why in world.timeline.down[node] if why == "crash" and stop)
    assert restarted, "the run must restart a crashed node for this test to mean anything"


def test_report_fits_the_window_has_a_legend_zoom_and_readable_operations(crashy_run):
    result, world = crashy_run
    page = render_report(world, result)
    assert 'width="1400"' not in page and 'id="timeline"' in page and "zoom(" in page
    for mark in ("crashed", "paused", "partition", "leader elected", "network healed",
                 "invariant violated", "op ok", "op failed", "op unknown"):
        assert mark in page
    titles = re.findall(r'<rect class="[kfu]"[^>]*><title>([^<]*)</title>', page)
    assert titles and all(t.split()[0] in ("put", "get", "cas") for t in titles)
    assert not any("{'" in t or "b'" in t for t in titles)  # no Python reprs
    assert "<h2>Faults as applied</h2>" in page and "crashed until" in page


def test_report_loads_in_headless_chromium_without_errors(crashy_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    result, world = crashy_run
    path = tmp_path / "run.html"
    write_report(str(path), world, result)
    # A probe in the page uses the zoom control, counts the shapes drawn and records any
    # script error in the title; the strings are split so the probe's own text never matches.
    page = path.read_text()
    probe = ("<script>var errors=[];window.onerror=function(m){errors.push(m)};"
             "window.addEventListener('load',function(){zoom(4);zoom(1);"
             "var n=document.querySelectorAll('#timeline rect').length;"
             "document.title=errors.length?'PROBE-'+'ERROR '+errors.join('; '):'PROBE-'+'OK '+n;});</script>")
    path.write_text(page.replace("<script>", probe + "<script>", 1))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", done.stdout).group(1)
    assert title.startswith("PROBE-OK "), title
    assert int(title.split()[1]) > 10  # the timeline's shapes are in the live document


def test_a_coordinator_report_has_worker_and_partition_lanes():
    from simulations.world import SimConfig as Config

    result, world = run_simulation(Config(seed=1, duration=30.0, converge_within=30.0,
                                          workload=WorkloadConfig(rate=10.0)), "worker-crash")
    coord = world.coord_timeline
    assert coord.workers and coord.partitions
    assert any(status == "crashed" for spans in coord.workers.values() for *_, status in spans)
    epochs = [span[3] for spans in coord.partitions.values() for span in spans]
    assert max(epochs) > min(epochs)  # ownership changed hands during the run
    page = render_report(world, result)
    for worker_id in coord.workers:
        assert f">worker {worker_id}</text>" in page
    for pid in coord.partitions:
        assert f">part {pid}</text>" in page
    assert "lease of worker" in page and "worker crashed" in page and "quarantined" in page
    assert re.search(r"partition \S+ slot 0: \S+, epoch \d+", page)

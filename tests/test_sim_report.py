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
    # A probe appended to the page calls the zoom control and records any script error.
    page = path.read_text()
    probe = ("<script>window.onerror=function(m){document.title='JSERROR '+m};"
             "window.addEventListener('load',function(){zoom(4);zoom(1);"
             "if(!document.querySelector('#timeline rect'))document.title='JSERROR no shapes';});</script>")
    path.write_text(page.replace("</head>", probe + "</head>", 1))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           path.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<svg" in done.stdout and "JSERROR" not in done.stdout

"""`raftcoord serve --http-listen --log-format json` as a real process: the HTTP port
answers, and every stderr line is a JSON object."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from cluster_harness import ROOT, cli_command, free_port, read_line


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_with_http_and_json_logs(tmp_path):
    peer, client = free_port(), free_port()
    process = subprocess.Popen(
        cli_command("serve", "--id", "1", "--data-dir", str(tmp_path / "n1"),
                    "--listen", f"127.0.0.1:{client}", "--peer-listen", f"127.0.0.1:{peer}",
                    "--peers", f"1=127.0.0.1:{peer}/127.0.0.1:{client}", "--no-fsync",
                    "--tick", "0.02", "--http-listen", "127.0.0.1:0", "--log-format", "json",
                    "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        info = json.loads(read_line(process.stdout, 30))
        base = f"http://{info['http']}"
        assert get(f"{base}/healthz")[0] == 200
        deadline = time.monotonic() + 20
        while get(f"{base}/readyz")[0] != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        while True:  # /readyz reads the role at once; the change is logged once persisted
            status, body = get(f"{base}/metrics")
            families = {f.name: f for f in text_string_to_metric_families(body.decode())}
            assert status == 200
            if sum(s.value for s in families["raftcoord_leader_changes"].samples
                   if s.name.endswith("_total")) >= 1:
                break
            assert time.monotonic() < deadline, "the leader change was never counted"
            time.sleep(0.05)
        assert {"raftcoord_raft_role", "raftcoord_raft_term"} <= set(families)
        assert json.loads(get(f"{base}/status")[1])["role"] == "leader"
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    assert process.returncode == 0
    events = [json.loads(line) for line in err.decode().splitlines()]
    assert any(e.get("event") == "leader_changed" for e in events)
    assert any("stopped" in e["message"] for e in events)

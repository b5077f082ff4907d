"""A self-contained HTML timeline of one run (inline SVG and CSS, no external assets).

Rows, top to bottom: partitions; one lane per node showing its role over time with
crashes and pauses drawn over it (and, as a thin orange bar, the spans during which
a membership fault wanted it out of the configuration); leader changes; one lane per client with every
operation from invocation to outcome. Hovering any shape shows its details.
"""

from __future__ import annotations

import html
from typing import Any

from .history import Outcome

_ROLE_COLOURS = {
    "follower": "#cfd8dc",
    "pre-candidate": "#fff59d",
    "candidate": "#ffb74d",
    "leader": "#66bb6a",
}
_OUTCOME_COLOURS = {Outcome.OK: "#43a047", Outcome.FAIL: "#9e9e9e", Outcome.UNKNOWN: "#e53935", None: "#e53935"}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; font-size: 0.9em; text-align: left; }
.bad { color: #c62828; font-weight: bold; } .good { color: #2e7d32; font-weight: bold; }
pre { background: #f5f5f5; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
svg text { font-size: 11px; font-family: system-ui, sans-serif; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; font-size: 0.85em; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_report(world: Any, result: Any) -> str:
    """The HTML page for a finished `World` and its `RunResult`."""
    timeline = world.timeline
    end = max(world.now, 1e-9)
    width, left, lane = 1400, 110, 18
    scale = (width - left - 10) / end

    def x(t: float) -> float:
        return left + t * scale

    parts: list[str] = []
    y = 20

    def label(text: str) -> None:
        parts.append(f'<text x="4" y="{y + lane - 5}">{_esc(text)}</text>')

    def rect(t0: float, t1: float, colour: str, title: str, height: float = lane - 2, dy: float = 0,
             extra: str = "") -> None:
        w = max((t1 - t0) * scale, 1.0)
        parts.append(f'<rect x="{x(t0):.1f}" y="{y + dy:.1f}" width="{w:.1f}" height="{height}" '
                     f'fill="{colour}" {extra}><title>{_esc(title)}</title></rect>')

    # Time axis.
    step = _nice_step(end)
    t = 0.0
    while t <= end:
        parts.append(f'<line x1="{x(t):.1f}" y1="12" x2="{x(t):.1f}" y2="{{HEIGHT}}" stroke="#eee"/>')
        parts.append(f'<text x="{x(t) + 2:.1f}" y="10">{t:g}s</text>')
        t += step

    # Partitions.
    label("network")
    for start, stop, description in timeline.partitions:
        stop = end if stop is None else stop
        rect(start, stop, "#90caf9", f"{description}: {start:.3f}s – {stop:.3f}s")
    y += lane + 4

    # Nodes.
    for node in timeline.nodes:
        label(f"node {node}")
        changes = timeline.roles[node]
        for i, (start, role, term) in enumerate(changes):
            stop = changes[i + 1][0] if i + 1 < len(changes) else end
            rect(start, stop, _ROLE_COLOURS.get(role, "#ccc"), f"node {node} {role} (term {term}) "
                 f"{start:.3f}s – {stop:.3f}s")
        for start, stop, why in timeline.down[node]:
            stop = end if stop is None else stop
            colour = "#212121" if why == "crash" else "#8e24aa"
            rect(start, stop, colour, f"node {node} {why}ed {start:.3f}s – {stop:.3f}s",
                 height=6, dy=(lane - 2) / 2 - 3)
        for start, stop in timeline.removed[node]:
            stop = end if stop is None else stop
            rect(start, stop, "#ef6c00", f"node {node} out of the configuration "
                 f"{start:.3f}s – {stop:.3f}s", height=3, dy=0)
        y += lane + 2

    # Leader changes.
    y += 4
    label("leaders")
    for time, node, term in timeline.leaders:
        parts.append(f'<g><line x1="{x(time):.1f}" y1="{y}" x2="{x(time):.1f}" y2="{y + lane}" '
                     f'stroke="#2e7d32" stroke-width="2"/><text x="{x(time) + 2:.1f}" '
                     f'y="{y + lane - 5}">{node}</text><title>node {node} leads term {term} '
                     f'from {time:.3f}s</title></g>')
    y += lane + 6

    # Client operations, one lane per client.
    clients = sorted({op.client for op in world.history})
    small = 10
    for client in clients:
        parts.append(f'<text x="4" y="{y + small - 1}">client {client}</text>')
        for op in world.history:
            if op.client != client:
                continue
            stop = op.complete_time if op.complete_time is not None else end
            w = max((stop - op.invoke_time) * scale, 1.0)
            outcome = op.outcome.value if op.outcome else "open"
            parts.append(f'<rect x="{x(op.invoke_time):.1f}" y="{y}" width="{w:.1f}" height="{small - 2}" '
                         f'fill="{_OUTCOME_COLOURS[op.outcome]}"><title>{_esc(op.describe())} '
                         f'({outcome})</title></rect>')
        y += small
    y += 8

    # Heal and violation markers.
    if timeline.heal_time is not None:
        parts.append(f'<line x1="{x(timeline.heal_time):.1f}" y1="12" x2="{x(timeline.heal_time):.1f}" '
                     f'y2="{y}" stroke="#1565c0" stroke-dasharray="4 3"><title>healed at '
                     f'{timeline.heal_time:.3f}s</title></line>')
    for v in result.violations:
        parts.append(f'<line x1="{x(min(v.time, end)):.1f}" y1="12" x2="{x(min(v.time, end)):.1f}" '
                     f'y2="{y}" stroke="#c62828" stroke-width="2"><title>{_esc(v.invariant)}: '
                     f'{_esc(v.detail)}</title></line>')

    svg = "\n".join(parts).replace("{HEIGHT}", str(y))
    status = ('<span class="good">ok</span>' if result.ok
              else '<span class="bad">FAILED: ' + _esc(", ".join(v.invariant for v in result.violations)) + "</span>")
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in (
        ("seed", result.seed), ("scenario", result.scenario), ("status", ""),
        ("simulated seconds", f"{result.simulated_seconds:.3f}"), ("events", result.events),
        ("elections", result.elections),
        ("max unavailability (s)", f"{result.max_unavailability_seconds:.3f}"),
        ("client ops", result.client_ops), ("linearizable", result.linearizable),
        ("trace hash", result.trace_hash), ("reproduce", result.reproduce)))
    rows = rows.replace("<th>status</th><td></td>", f"<th>status</th><td>{status}</td>")
    plan = "".join(f"<li>{f.time:.3f}s {_esc(f.describe())}</li>" for f in world.plan[:200])
    details = ""
    if not result.ok:
        details = "<h2>Violation</h2><pre>" + _esc(result.explain()) + "</pre>"
    legend = "".join(f'<span style="background:{c}">{r}</span>' for r, c in _ROLE_COLOURS.items())
    legend += ('<span style="background:#212121;color:#fff">crashed</span>'
               '<span style="background:#8e24aa;color:#fff">paused</span>'
               '<span style="background:#90caf9">partition</span>'
               '<span style="background:#43a047;color:#fff">op ok</span>'
               '<span style="background:#9e9e9e">op failed</span>'
               '<span style="background:#e53935;color:#fff">op unknown</span>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>raftcoord simulation seed {_esc(result.seed)}</title>
<style>{_CSS}</style></head><body>
<h1>raftcoord simulation — seed {_esc(result.seed)}</h1>
<table>{rows}</table>
{details}
<div class="legend">{legend}</div>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}" viewBox="0 0 {width} {y + 10}">
{svg}
</svg>
<h2>Fault plan</h2><ul>{plan}</ul>
</body></html>
"""


def _nice_step(end: float) -> float:
    for step in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if end / step <= 25:
            return float(step)
    return end / 20


def write_report(path: str, world: Any, result: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_report(world, result))

"""A self-contained HTML timeline of one run (inline SVG and CSS, no external assets).

Rows, top to bottom: partitions; one lane per node showing its role over time with
crashes and pauses drawn over it (and, as a thin orange bar, the spans during which
a membership fault wanted it out of the configuration); leader changes; in a
coordinator run, one lane per worker (alive, paused, cut off, crashed, draining,
left; lease expiries) and one per partition (owner of each slot over time, epochs,
moves, quarantine, where a checker fired); one lane per client with every
operation from invocation to outcome. Hovering any shape shows its details. The
timeline fits the window and can be zoomed (buttons above it; it then scrolls).
Below it, the faults as they were applied (which node a "crash leader" hit) and the
fault plan as it was drawn.
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

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; font-size: 0.9em; text-align: left; }
.bad { color: #c62828; font-weight: bold; } .good { color: #2e7d32; font-weight: bold; }
pre { background: #f5f5f5; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
svg text { font-size: 11px; font-family: system-ui, sans-serif; }
.legend span { display: inline-block; padding: 1px 8px; margin: 2px 6px 2px 0; font-size: 0.85em; }
#scroller { overflow-x: auto; border: 1px solid #eee; } #timeline { display: block; width: 100%; }
.ops rect { height: 8px; } .k { fill: #43a047; } .f { fill: #9e9e9e; } .u { fill: #e53935; }
.zoom button { margin-right: 4px; }
"""

_ZOOM_JS = """
function zoom(factor) {
  document.getElementById('timeline').style.width = (factor * 100) + '%';
}
"""
_OP_CLASS = {Outcome.OK: "k", Outcome.FAIL: "f", Outcome.UNKNOWN: "u", None: "u"}


def _plain(value: Any) -> str:
    """A value as a reader would write it: no Python reprs of dicts, bytes or quotes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)


def _op_text(op: Any) -> str:
    """One client operation as text (its lane names the client), e.g. "put k1 = c2-7 at 1.204s: ok, 12 ms"."""
    kind = op.kind.value if hasattr(op.kind, "value") else str(op.kind)
    if kind == "put":
        call = f"put {op.key} = {_plain(op.value)}"
    elif kind == "get":
        call = f"get {op.key}"
    else:
        call = f"cas {op.key} from {_plain(op.expected)} to {_plain(op.value)}"
    outcome = op.outcome.value if op.outcome else "no answer"
    if op.outcome is Outcome.OK and kind != "put":
        outcome += f", got {_plain(op.result)}"
    if op.complete_time is None:
        return f"{call} at {op.invoke_time:.3f}s: {outcome}"
    return f"{call} at {op.invoke_time:.3f}s: {outcome}, {(op.complete_time - op.invoke_time) * 1000:.0f} ms"


def _minus(start: float, stop: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of [start, stop) outside every hole (a node's role does not run while it is down)."""
    pieces = [(start, stop)]
    for h0, h1 in holes:
        pieces = [p for a, b in pieces for p in ((a, min(b, h0)), (max(a, h1), b)) if p[1] > p[0]]
    return pieces


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_report(world: Any, result: Any) -> str:
    """The HTML page for a finished `World` and its `RunResult`."""
    timeline = world.timeline
    end = max(world.now, 1e-9)
    width, left, lane = 1400, 110, 18  # viewBox units; the drawing scales to the window
    scale = (width - left - 10) / end

    def x(t: float) -> float:
        return left + t * scale

    parts: list[str] = []
    y = 20

    def label(text: str) -> None:
        parts.append(f'<text x="4" y="{y + lane - 5}">{_esc(text)}</text>')

    def rect(t0: float, t1: float, colour: str, title: str, height: float = lane - 2, dy: float = 0,
             extra: str = "", top: float | None = None) -> None:
        w = max((t1 - t0) * scale, 1.0)
        parts.append(f'<rect x="{x(t0):.1f}" y="{(y if top is None else top) + dy:.1f}" width="{w:.1f}" height="{height:.3g}" '
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
        crashed = [(a, end if b is None else b) for a, b, why in timeline.down[node] if why == "crash"]
        for i, (start, role, term) in enumerate(changes):
            stop = changes[i + 1][0] if i + 1 < len(changes) else end
            for a, b in _minus(start, stop, crashed):
                rect(a, b, _ROLE_COLOURS.get(role, "#ccc"), f"node {node} {role} (term {term}) "
                     f"{a:.3f}s – {b:.3f}s")
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

    coord = getattr(world, "coord_timeline", None)
    if coord is not None:
        y = _draw_coordinator(coord, result, parts, rect, x, y, lane, end)

    # Client operations, one lane per client.
    clients = sorted({op.client for op in world.history})
    small = 10
    for client in clients:
        parts.append(f'<text x="4" y="{y + small - 1}">client {client}</text><g class="ops" '
                     f'transform="translate(0 {y})">')
        for op in world.history:
            if op.client != client:
                continue
            stop = op.complete_time if op.complete_time is not None else end
            w = max((stop - op.invoke_time) * scale, 1.0)
            # Tens of thousands of these in a long run: CSS gives colour and height, so each is short.
            parts.append(f'<rect class="{_OP_CLASS[op.outcome]}" x="{x(op.invoke_time):.1f}" '
                         f'width="{w:.1f}"><title>{_esc(_op_text(op))}</title></rect>')
        parts.append("</g>")
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
    applied = "".join(f"<li>{t:.3f}s {_esc(text)}</li>" for t, text in _applied_faults(timeline)[:400])
    details = ""
    if not result.ok:
        details = "<h2>Violation</h2><pre>" + _esc(result.explain()) + "</pre>"
    legend = "".join(f'<span style="background:{c}">{r}</span>' for r, c in _ROLE_COLOURS.items())
    legend += ('<span style="background:#212121;color:#fff">crashed</span>'
               '<span style="background:#8e24aa;color:#fff">paused</span>'
               '<span style="background:#90caf9">partition</span>'
               '<span style="background:#ef6c00;color:#fff">out of the configuration (thin bar)</span>'
               '<span style="border-left:3px solid #2e7d32">leader elected (node id)</span>'
               '<span style="border-left:3px dashed #1565c0">network healed</span>'
               '<span style="border-left:3px solid #c62828">invariant violated</span>'
               '<span style="background:#43a047;color:#fff">op ok</span>'
               '<span style="background:#9e9e9e">op failed</span>'
               '<span style="background:#e53935;color:#fff">op unknown or unanswered</span>')
    if getattr(world, "coord_timeline", None) is not None:
        legend += _COORD_LEGEND
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>raftcoord simulation seed {_esc(result.seed)}</title>
<style>{_CSS}</style><script>{_ZOOM_JS}</script></head><body>
<h1>raftcoord simulation — seed {_esc(result.seed)}</h1>
<table>{rows}</table>
{details}
<div class="legend">{legend}</div>
<div class="zoom">zoom: <button onclick="zoom(1)">fit</button><button onclick="zoom(2)">2×</button><button onclick="zoom(4)">4×</button><button onclick="zoom(10)">10×</button><button onclick="zoom(30)">30×</button></div>
<div id="scroller"><svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {y + 10}" preserveAspectRatio="xMinYMin meet">
{svg}
</svg></div>
<h2>Faults as applied</h2><ul>{applied}</ul>
<h2>Fault plan (as drawn, before it met the cluster)</h2><ul>{plan}</ul>
</body></html>
"""


_WORKER_COLOURS = {"alive": "#a5d6a7", "paused": "#8e24aa", "cut off": "#90caf9", "crashed": "#212121",
                   "draining": "#ffcc80", "left": "#eeeeee"}
_QUARANTINED = "#b71c1c"
_COORD_LEGEND = ("".join(f'<span style="background:{c}">worker {s}</span>' for s, c in _WORKER_COLOURS.items())
                 + '<span style="border-left:8px solid #c62828">lease expired (▼)</span>'
                 + '<span style="background:#4db6ac">partition slot owned (one colour per worker, as ■ by its name)</span>'
                 + '<span style="border:1px solid #ccc">slot without owner (held or unassigned)</span>'
                 + f'<span style="background:{_QUARANTINED};color:#fff">quarantined</span>'
                 + '<span style="border-left:2px solid #000">move (handoff to a new owner)</span>'
                 + '<span style="color:#c62828">○ checker fired on this partition</span>')
_OWNER_PALETTE = ("#4db6ac", "#7986cb", "#f06292", "#aed581", "#ffb74d", "#9575cd", "#4fc3f7",
                  "#dce775", "#a1887f")


def _draw_coordinator(coord: Any, result: Any, parts: list[str], rect: Any, x: Any,
                      y: float, lane: float, end: float) -> float:
    """Worker lanes (status, lease expiries) and partition lanes (owners, epochs, moves, quarantine).

    Each worker has its own colour in the partition lanes, so a handoff shows as a
    change of colour; a slot with no owner is white, a quarantined partition red.
    A checker's violation is marked on the lane of the partition its detail names.
    """
    colour_of = {w: _OWNER_PALETTE[i % len(_OWNER_PALETTE)] for i, w in enumerate(sorted(coord.workers))}
    y += 6
    for worker_id in sorted(coord.workers):
        parts.append(f'<text x="4" y="{y + lane - 5}" fill="{colour_of[worker_id]}">■</text>')
        parts.append(f'<text x="16" y="{y + lane - 5}">worker {_esc(worker_id)}</text>')
        for start, stop, status in coord.workers[worker_id]:
            stop = end if stop is None else stop
            rect(start, stop, _WORKER_COLOURS[status], f"worker {worker_id} {status} {start:.3f}s – {stop:.3f}s",
                 top=y)
        for time, who in coord.expiries:
            if who == worker_id:
                parts.append(f'<path d="M{x(time) - 4:.1f} {y} h8 l-4 {lane - 2} z" fill="#c62828">'
                             f'<title>lease of worker {_esc(who)} expired at {time:.3f}s</title></path>')
        y += lane + 2
    y += 4
    for pid in sorted(coord.partitions):
        parts.append(f'<text x="4" y="{y + lane - 5}">part {_esc(pid)}</text>')
        spans = coord.partitions[pid]
        for i, (start, stop, owners, epoch, quarantined) in enumerate(spans):
            stop = end if stop is None else stop
            names = ", ".join(o or "none" for o in owners)
            if quarantined:
                rect(start, stop, _QUARANTINED, f"partition {pid} quarantined (epoch {epoch}) {start:.3f}s – {stop:.3f}s",
                     top=y)
                continue
            height = (lane - 2) / max(len(owners), 1)
            for slot, owner in enumerate(owners):
                rect(start, stop, colour_of.get(owner, "#ffffff") if owner else "#ffffff",
                     f"partition {pid} slot {slot}: {owner or 'no owner (held or unassigned)'}, epoch {epoch} "
                     f"({names}) {start:.3f}s – {stop:.3f}s", height=height, dy=slot * height, top=y)
            if i and any(a and b and a != b for a, b in zip(spans[i - 1][2], owners)):
                moved = ", ".join(f"{a} → {b}" for a, b in zip(spans[i - 1][2], owners) if a and b and a != b)
                parts.append(f'<line x1="{x(start):.1f}" y1="{y}" x2="{x(start):.1f}" y2="{y + lane - 2}" '
                             f'stroke="#000" stroke-width="1.5"><title>partition {pid} moved {_esc(moved)} '
                             f'at {start:.3f}s (epoch {epoch})</title></line>')
        for v in result.violations:
            if pid in v.detail:
                parts.append(f'<circle cx="{x(min(v.time, end)):.1f}" cy="{y + (lane - 2) / 2}" r="5" fill="none" '
                             f'stroke="#c62828" stroke-width="2"><title>{_esc(v.invariant)}: {_esc(v.detail)}'
                             f'</title></circle>')
        y += lane + 2
    return y + 4


def _applied_faults(timeline: Any) -> list[tuple[float, str]]:
    """What the faults did, in time order: the node each crash or pause hit, each partition."""
    def until(stop: Any) -> str:
        return "the end" if stop is None else f"{stop:.3f}s"

    events = []
    for node in timeline.nodes:
        events += [(start, f"node {node} {why}ed until {until(stop)}") for start, stop, why in timeline.down[node]]
        events += [(start, f"node {node} out of the configuration until {until(stop)}")
                   for start, stop in timeline.removed[node]]
    events += [(start, f"network {description} until {until(stop)}")
               for start, stop, description in timeline.partitions]
    return sorted(events, key=lambda e: e[0])


def _nice_step(end: float) -> float:
    for step in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if end / step <= 25:
            return float(step)
    return end / 20


def write_report(path: str, world: Any, result: Any) -> None:
    """Write the HTML page of a finished run to `path`."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_report(world, result))

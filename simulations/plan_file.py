"""Plan files: a run's whole schedule as JSON, replayable with `raftcoord simulate --plan`.

A plan file pins everything a run does on purpose: the configuration (seed, cluster
size, phases, workload, options), the coordinator-node faults, which client
operations are issued, and for coordinator scenarios the scripted actions and the
workers that take part. `--shrink` writes one for the smallest failing schedule it
finds; a user can edit one by hand (drop a fault, move it in time) and replay it.

Format, version 1 (every key required unless marked optional)::

    {
      "format": "raftcoord-simulation-plan",
      "version": 1,
      "scenario": "kv",                      # a registered scenario name
      "config": {                            # SimConfig fields
        "seed": 7, "nodes": 5, "duration": 60.0, "converge_within": 30.0,
        "tick_seconds": 0.1, "drift": 0.05, "election_ticks": 10, "heartbeat_ticks": 2,
        "disk": "file", "compact_every": 500, "eager_commit": false,
        "batch_reads": true, "codec": true, "max_events": 0,
        "max_entries_per_message": 4096, "max_inflight": 256, "clock_edges": false,
        "workload": {"rate": 50.0, "clients": 10, "keys": 5, "timeout": 2.0,
                     "read_fraction": 0.4, "cas_fraction": 0.2},
        "faults": {"kinds": ["crash", ...], "partition_rate": 0.1, ..., "corner_rate": 0.02,
                   "swarm": false}
      },
      "faults": [{"time": 3.5, "kind": "crash", "duration": 2.0, "node": 0, "rate": 0.0}],
      "client_ops": {"limit": 120, "skipped": [3, 17]},   # limit null: no limit
      "workers_left_out": ["w4"],            # coordinator scenarios only, else []
      "actions": [{"time": 8.0, "kind": "crash_worker", "args": ["w1", 3.5],
                   "measure": true}],        # null: the scenario's own script
      "expect": "linearizability"            # optional: the invariant it fails
    }

The random choices the schedule leaves open (latencies, losses, election timeouts,
which node a "leader" fault hits) still come from the seed, so a replay is the
same run event for event. `load_plan` validates every field and raises `PlanError`
with one line naming the first problem.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs

from .faults import ALL_KINDS, Fault, FaultConfig
from .world import SimConfig, WorkloadConfig

FORMAT = "raftcoord-simulation-plan"
VERSION = 1

_CONFIG_SCALARS: dict[str, type | tuple[type, ...]] = {
    "seed": int, "nodes": int, "duration": (int, float), "converge_within": (int, float),
    "tick_seconds": (int, float), "drift": (int, float), "election_ticks": int,
    "heartbeat_ticks": int, "disk": str, "compact_every": int, "eager_commit": bool,
    "batch_reads": bool, "codec": bool, "max_events": int, "max_entries_per_message": int,
    "max_inflight": int, "clock_edges": bool,
}
_WORKLOAD_FIELDS = ("rate", "clients", "keys", "timeout", "read_fraction", "cas_fraction")
_FAULT_RATES = ("partition_rate", "crash_rate", "pause_rate", "transfer_rate", "membership_rate",
                "loss", "duplicate", "reorder", "corner_rate")


class PlanError(ValueError):
    """A plan file that cannot be run; the message is one line naming the problem."""


@attrs.frozen
class Plan:
    """A replayable schedule: a configuration and what is left in it.

    Attributes:
        scenario: the scenario name.
        config: the run's configuration, its `plan` and client-operation fields set.
        workers_left_out: workers of a coordinator scenario that never start.
        actions: a coordinator scenario's scripted actions (None = its own script).
        expect: the invariant the schedule is known to break ("" = not recorded).
    """

    scenario: str
    config: SimConfig
    workers_left_out: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    actions: tuple | None = None
    expect: str = ""

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self.config.plan or ()


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The JSON document of `plan` (see the module docstring)."""
    config = plan.config
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "scenario": plan.scenario,
        "config": {
            **{name: getattr(config, name) for name in _CONFIG_SCALARS},
            "workload": {name: getattr(config.workload, name) for name in _WORKLOAD_FIELDS},
            "faults": {"kinds": sorted(config.faults.kinds), "swarm": config.faults.swarm,
                       **{name: getattr(config.faults, name) for name in _FAULT_RATES}},
        },
        "faults": [attrs.asdict(fault) for fault in plan.faults],
        "client_ops": {"limit": config.client_op_limit,
                       "skipped": sorted(config.skipped_client_ops)},
        "workers_left_out": sorted(plan.workers_left_out),
        "actions": None if plan.actions is None else [
            {"time": a.time, "kind": a.kind, "args": list(a.args), "measure": a.measure}
            for a in plan.actions],
    }
    if plan.expect:
        data["expect"] = plan.expect
    return data


def save_plan(path: str, plan: Plan) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(plan_to_json(plan), handle, indent=1)
        handle.write("\n")


def load_plan(path: str) -> Plan:
    """Read and validate a plan file.

    Raises:
        PlanError: unreadable, not JSON, another format or version, or a field
            missing or of the wrong type or range.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: not JSON: {exc}") from None
    try:
        return plan_from_json(data)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from None


def plan_from_json(data: Any) -> Plan:
    """The `Plan` of a decoded JSON document. Raises PlanError."""
    from .scenarios import scenario_names

    doc = _mapping(data, "the plan")
    if doc.get("format") != FORMAT:
        raise PlanError(f"not a plan file (format is {doc.get('format')!r}, expected {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise PlanError(f"unsupported plan version {doc.get('version')!r} (this version reads {VERSION})")
    scenario = _field(doc, "scenario", str, "the plan")
    if scenario not in scenario_names():
        raise PlanError(f"unknown scenario {scenario!r}")
    raw_config = _mapping(_field(doc, "config", dict, "the plan"), "config")
    scalars = {name: _field(raw_config, name, kind, "config") for name, kind in _CONFIG_SCALARS.items()}
    raw_workload = _mapping(_field(raw_config, "workload", dict, "config"), "config.workload")
    workload = {name: _field(raw_workload, name, (int, float), "config.workload")
                for name in _WORKLOAD_FIELDS}
    raw_faults = _mapping(_field(raw_config, "faults", dict, "config"), "config.faults")
    kinds = _field(raw_faults, "kinds", list, "config.faults")
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise PlanError(f"config.faults.kinds: unknown fault kinds {unknown}")
    rates = {name: _field(raw_faults, name, (int, float), "config.faults") for name in _FAULT_RATES}
    faults = [_fault(item, i, scalars["nodes"]) for i, item in
              enumerate(_field(doc, "faults", list, "the plan"))]
    client_ops = _mapping(_field(doc, "client_ops", dict, "the plan"), "client_ops")
    limit = client_ops.get("limit", "missing")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise PlanError(f"client_ops.limit must be null or a count >= 0, got {limit!r}")
    skipped = _field(client_ops, "skipped", list, "client_ops")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in skipped):
        raise PlanError("client_ops.skipped must list operation numbers >= 0")
    left_out = _field(doc, "workers_left_out", list, "the plan")
    if not all(isinstance(w, str) for w in left_out):
        raise PlanError("workers_left_out must list worker ids")
    actions = doc.get("actions", "missing")
    if actions == "missing":
        raise PlanError("the plan has no 'actions' (null for the scenario's own script)")
    if actions is not None:
        actions = tuple(_action(item, i) for i, item in enumerate(_field(doc, "actions", list, "the plan")))
    expect = doc.get("expect", "")
    if not isinstance(expect, str):
        raise PlanError("expect must be an invariant name")
    try:
        config = SimConfig(
            **scalars,
            workload=WorkloadConfig(**workload),
            faults=FaultConfig(kinds=frozenset(kinds), swarm=bool(raw_faults.get("swarm", False)), **rates),
            plan=tuple(faults), client_op_limit=limit, skipped_client_ops=frozenset(skipped))
    except (TypeError, ValueError) as exc:
        raise PlanError(f"config: {exc}") from None
    _check_ranges(config)
    return Plan(scenario, config, frozenset(left_out), actions, expect)


def _check_ranges(config: SimConfig) -> None:
    problems = []
    if not 1 <= config.nodes <= 9:
        problems.append(f"config.nodes must be 1..9, got {config.nodes}")
    for name in ("duration", "converge_within", "tick_seconds"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0 or (name != "duration" and value == 0):
            problems.append(f"config.{name} must be a positive number, got {value!r}")
    if config.disk not in ("file", "model"):
        problems.append(f"config.disk must be 'file' or 'model', got {config.disk!r}")
    if config.workload.clients < 1 or config.workload.rate < 0:
        problems.append("config.workload needs clients >= 1 and rate >= 0")
    if problems:
        raise PlanError(problems[0])


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise PlanError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _field(doc: dict, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in doc:
        raise PlanError(f"{where} has no {name!r}")
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise PlanError(f"{where}.{name} must be {_type_names(kinds)}, got {value!r}")
    if not isinstance(value, kinds):
        raise PlanError(f"{where}.{name} must be {_type_names(kinds)}, got {value!r}")
    return value


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _fault(item: Any, index: int, nodes: int) -> Fault:
    where = f"faults[{index}]"
    doc = _mapping(item, where)
    kind = _field(doc, "kind", str, where)
    if kind not in ALL_KINDS:
        raise PlanError(f"{where}.kind: unknown fault kind {kind!r}")
    time = _field(doc, "time", (int, float), where)
    duration = _field(doc, "duration", (int, float), where)
    node = _field(doc, "node", int, where)
    rate = _field(doc, "rate", (int, float), where)
    if time < 0 or duration < 0 or not 0 <= rate <= 1 or not 0 <= node <= nodes:
        raise PlanError(f"{where}: time and duration must be >= 0, rate 0..1, node 0..{nodes}")
    return Fault(float(time), kind, float(duration), node, float(rate))


def _action(item: Any, index: int) -> Any:
    from .coord_world import Action

    where = f"actions[{index}]"
    doc = _mapping(item, where)
    time = _field(doc, "time", (int, float), where)
    if time < 0:
        raise PlanError(f"{where}.time must be >= 0")
    args = _field(doc, "args", list, where)
    if not all(a is None or isinstance(a, (str, int, float, bool)) for a in args):
        raise PlanError(f"{where}.args must hold strings, numbers, booleans or null")
    return Action(float(time), _field(doc, "kind", str, where), tuple(args),
                  bool(doc.get("measure", False)))

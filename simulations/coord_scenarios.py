"""The named coordinator scenarios (`raftcoord simulate --scenario NAME`).

Each one is a `CoordSpec` (workers, zones, partition groups, lease timing) and a
script of actions spread over the fault phase (`SimConfig.duration`); random choices
come from the run's seed. Coordinator-node faults from the run's fault plan apply
only where a scenario says so (leader-crash scripts its own, network-partition keeps
the partition kinds, mixed keeps everything); the others keep the coordinator calm
so that move counts are measured cleanly. Failovers are checked in every scenario,
their deadline moved by what the coordinator went through (see
`CoordWorld.failover_deadline`).

Lease timing in every scenario: lease 2 s, drift bound = the run's drift (5 %),
safety margin 0.1 s, heartbeats every 0.4 s: a worker acts 1.8 s after sending an
acknowledged heartbeat, the leader expires it 2.1 s after receiving one.
"""

from __future__ import annotations

from typing import Callable

import attrs

from .coord_world import Action, CoordSpec, CoordWorld
from .faults import PARTITION_KINDS
from .scenarios import Scenario, register
from .world import SimConfig


def _times(world: CoordWorld, first: float, every: float, tail: float = 4.0) -> list[float]:
    out, t = [], first
    while t < world.config.duration - tail:
        out.append(t)
        t += every
    return out


def _live_ids(world: CoordWorld) -> list[str]:
    return sorted(world.workers)


def worker_crash(world: CoordWorld) -> list[Action]:
    """A random worker crashes every 10 s (a measured death) and comes back 5 s later
    (a measured join)."""
    rng = world.rngs.stream("scenario")
    actions = []
    for t in _times(world, 8.0, 10.0, tail=6.0):
        victim = rng.choice(_live_ids(world))
        actions.append(Action(t, "crash_worker", (victim, None), measure=True))
        actions.append(Action(t + 5.0, "add_worker", (victim, world.workers[victim].zone),
                              measure=True))
    return actions


def worker_pause(world: CoordWorld) -> list[Action]:
    """Pauses longer than a lease (half of them between preparing and sending a
    checkpoint write, so the write arrives late with an old epoch), and short ones."""
    rng = world.rngs.stream("scenario")
    actions = []
    for i, t in enumerate(_times(world, 6.0, 6.0, tail=5.0)):
        victim = rng.choice(_live_ids(world))
        long = i % 3 != 2
        actions.append(Action(t, "pause_worker", (victim, rng.uniform(3.0, 5.0) if long
                                                  else rng.uniform(0.2, 1.0), i % 2 == 0)))
    return actions


def rolling_restart(world: CoordWorld) -> list[Action]:
    """Every worker restarts in turn: odd ones within a lease (nothing moves), even
    ones after their lease ran out but within the restart delay (their slots are
    held and handed back)."""
    actions = []
    ids = _live_ids(world)
    for i, t in enumerate(_times(world, 6.0, 4.0, tail=4.0)):
        victim = ids[i % len(ids)]
        down = 1.0 if i % 2 else 2.8
        actions.append(Action(t, "crash_worker", (victim, down)))
    return actions


def scale_out(world: CoordWorld) -> list[Action]:
    """Workers join one at a time (each a measured join); a second partition group is
    created on the way."""
    actions = []
    times = _times(world, 8.0, 8.0, tail=5.0)
    for i, t in enumerate(times):
        worker_id = f"w{world.spec.workers + i}"
        actions.append(Action(t, "add_worker", (worker_id, f"z{(world.spec.workers + i) % world.spec.zones}"),
                              measure=True))
    if times:
        actions.append(Action(times[0] + 4.0, "create_group", ("events", 12, 1)))
    return actions


def scale_in(world: CoordWorld) -> list[Action]:
    """Workers are drained one at a time; each leaves once it owns nothing."""
    actions = []
    ids = _live_ids(world)
    for i, t in enumerate(_times(world, 8.0, 8.0, tail=6.0)):
        if len(ids) - i <= 3:
            break
        actions.append(Action(t, "drain", (ids[-1 - i],)))
    return actions


def zone_outage(world: CoordWorld) -> list[Action]:
    """A whole zone crashes and comes back; replicated partitions must keep their
    replicas in distinct zones."""
    rng = world.rngs.stream("scenario")
    actions = []
    for t in _times(world, 8.0, 16.0, tail=8.0):
        zone = f"z{rng.randrange(world.spec.zones)}"
        actions.append(Action(t, "crash_zone", (zone, 7.0)))
    return actions


def leader_crash(world: CoordWorld) -> list[Action]:
    """The coordinator leader crashes (or pauses) every 12 s; in between a worker
    crashes and returns."""
    rng = world.rngs.stream("scenario")
    actions = []
    for i, t in enumerate(_times(world, 6.0, 12.0, tail=4.0)):
        actions.append(Action(t, "node_fault", ("crash" if i % 3 != 2 else "pause", 3.0)))
        victim = rng.choice(_live_ids(world))
        actions.append(Action(t + 6.0, "crash_worker", (victim, 3.5), measure=True))
    return actions


def stale_leader(world: CoordWorld) -> list[Action]:
    """Every 10 s the leader is cut off with two of its workers and paused for
    2.5-4.5 s: it resumes still believing it leads just as the new leader may expire
    those workers. Only acknowledging heartbeats after a ReadIndex round keeps them
    from acting again beside their successors."""
    rng = world.rngs.stream("scenario")
    return [Action(t, "stale_leader", (rng.uniform(2.5, 4.5), 2))
            for t in _times(world, 6.0, 10.0, tail=6.0)]


def lease_handover(world: CoordWorld) -> list[Action]:
    """Every 6 s a worker is cut off from the cluster for longer than a lease and,
    within moments, leadership moves to another node (an election well inside the
    worker's lease; elections on their own take longer than a lease). Only a new
    leader that gives every worker it inherits a full lease from its start keeps
    the cut-off worker's partitions from being handed on while it still acts."""
    rng = world.rngs.stream("scenario")
    actions = []
    for t in _times(world, 6.0, 6.0, tail=6.0):
        victim = rng.choice(_live_ids(world))
        actions.append(Action(t, "isolate_worker", (victim, rng.uniform(3.0, 4.5))))
        actions.append(Action(t + rng.uniform(0.0, 0.15), "node_fault", ("transfer", 0.0)))
    return actions


def lease_edge(world: CoordWorld) -> list[Action]:
    """Pauses timed around lease ends: every 3 s a worker pauses for 0.8-1.3 leases
    (half of them between preparing and sending a checkpoint write), so it resumes
    just before or just after its lease ran out, holding acknowledgements or writes
    that arrive late; every fourth time the coordinator leader pauses for about a
    lease as well, so its successor's grace and the workers' leases end together."""
    rng = world.rngs.stream("scenario")
    lease = world.spec.lease
    actions = []
    for i, t in enumerate(_times(world, 5.0, 3.0)):
        victim = rng.choice(_live_ids(world))
        actions.append(Action(t, "pause_worker", (victim, lease * rng.uniform(0.8, 1.3), i % 2 == 0)))
        if i % 4 == 3:
            actions.append(Action(t + rng.uniform(0.0, 0.4), "node_fault",
                                  ("pause", lease * rng.uniform(0.8, 1.2))))
    return actions


def deposed_coordinator(world: CoordWorld) -> list[Action]:
    """Every 7 s the leader is cut off from the other nodes (not from the workers)
    and they elect a new leader at once (their clocks jump an election timeout):
    the old leader believes it leads until check-quorum deposes it, an election
    timeout later, and workers keep heartbeating to it. Only heartbeats
    acknowledged after a ReadIndex round keep them from acting past the lease the
    new leader counts."""
    rng = world.rngs.stream("scenario")
    return [Action(t, "node_fault", ("deposed_read", rng.uniform(2.5, 4.5)))
            for t in _times(world, 6.0, 7.0, tail=6.0)]


def network_partition(world: CoordWorld) -> list[Action]:
    """Coordinator partitions from the fault plan plus workers cut off from the whole
    cluster for longer than a lease (they keep running and must stop by themselves)."""
    rng = world.rngs.stream("scenario")
    return [Action(t, "isolate_worker", (rng.choice(_live_ids(world)), rng.uniform(2.5, 5.0)))
            for t in _times(world, 7.0, 9.0)]


def mixed(world: CoordWorld) -> list[Action]:
    """Everything at once: the run's coordinator faults, worker crashes, pauses,
    isolations, a join, a drain and a new partition group."""
    rng = world.rngs.stream("scenario")
    ids = _live_ids(world)
    actions = []
    kinds = ("crash_worker", "pause_worker", "isolate_worker")
    for i, t in enumerate(_times(world, 5.0, 4.0)):
        kind = kinds[i % 3]
        victim = rng.choice(ids)
        if kind == "crash_worker":
            args: tuple = (victim, rng.uniform(1.0, 5.0))
        elif kind == "pause_worker":
            args = (victim, rng.uniform(0.5, 4.0), rng.random() < 0.5)
        else:
            args = (victim, rng.uniform(1.0, 4.0))
        actions.append(Action(t, kind, args))
    duration = world.config.duration
    actions.append(Action(duration * 0.3, "create_group", ("events", 8, 2)))
    actions.append(Action(duration * 0.45, "add_worker", (f"w{len(ids)}", "z0")))
    actions.append(Action(duration * 0.6, "drain", (ids[0],)))
    return actions


def _build(spec: CoordSpec, keep: frozenset | None = None,
           world_class: type[CoordWorld] = CoordWorld) -> Callable[[SimConfig], CoordWorld]:
    def build(config: SimConfig) -> CoordWorld:
        world = world_class(config, spec)
        if keep is not None:
            world.plan = [f for f in world.plan if f.kind in keep]
        return world
    return build


SPECS: dict[str, tuple[str, CoordSpec, frozenset | None]] = {
    "worker-crash": ("workers crash and return; failover and minimal moves",
                     CoordSpec(script=worker_crash), None),
    "worker-pause": ("workers pause past their lease (some mid-write); fencing",
                     CoordSpec(script=worker_pause), None),
    "rolling-restart": ("every worker restarts in turn, within the lease or the restart delay",
                        CoordSpec(script=rolling_restart, restart_delay=3.0), None),
    "scale-out": ("workers join one by one; a partition group is created",
                  CoordSpec(workers=4, script=scale_out), None),
    "scale-in": ("workers drain and leave one by one",
                 CoordSpec(workers=8, groups=(("orders", 24, 1),), script=scale_in), None),
    "zone-outage": ("a whole zone fails and returns; replicas stay in distinct zones",
                    CoordSpec(groups=(("replicated", 12, 2), ("orders", 12, 1)),
                              script=zone_outage), None),
    "leader-crash": ("the coordinator leader crashes or pauses; workers crash between",
                     CoordSpec(script=leader_crash), None),
    "stale-leader": ("the leader is cut off with some workers and paused; it resumes "
                     "believing it leads", CoordSpec(script=stale_leader), None),
    "lease-handover": ("a worker is cut off as leadership moves at once; the new leader's "
                       "lease grace", CoordSpec(script=lease_handover), None),
    "lease-edge": ("workers (and sometimes the leader) pause for about a lease",
                   CoordSpec(script=lease_edge), None),
    "deposed-coordinator": ("the leader is deposed at once and keeps serving its workers until "
                            "check-quorum", CoordSpec(script=deposed_coordinator), None),
    "network-partition": ("coordinator partitions from the fault plan; workers cut off",
                          CoordSpec(node_faults=True, script=network_partition),
                          frozenset(PARTITION_KINDS)),
    "poison-partition": ("a partition kills every owner; it must be quarantined",
                         CoordSpec(groups=(("orders", 12, 1), ("poison", 1, 1)),
                                   poison="poison/0"), None),
    "mixed": ("coordinator faults of the run plus worker crashes, pauses, cuts, join, drain",
              CoordSpec(node_faults=True, script=mixed,
                        groups=(("orders", 16, 1), ("replicated", 6, 2)), restart_delay=1.0),
              None),
}
COORD_SCENARIOS = tuple(SPECS)


def spec_for(name: str) -> CoordSpec:
    return SPECS[name][1]


def build_for(name: str, world_class: type[CoordWorld] = CoordWorld,
              **changes) -> Callable[[SimConfig], CoordWorld]:
    """The builder of scenario ``name`` with `CoordSpec` fields changed, in a
    `CoordWorld` subclass if given (tests plant broken workers, state machines or
    leader drivers this way)."""
    _, spec, keep = SPECS[name]
    return _build(attrs.evolve(spec, **changes), keep, world_class)


for _name, (_description, _spec, _keep) in SPECS.items():
    register(Scenario(_name, _description, _build(_spec, _keep)))

__all__ = ["COORD_SCENARIOS", "SPECS", "build_for", "spec_for"]

"""Shrinking a failing run to the smallest schedule that still breaks the same invariant.

A failing seed usually carries far more than its bug needs: dozens of faults,
thousands of client operations, workers and scripted actions that happen to be
around. `shrink` replays the run with parts of its schedule left out and keeps
every removal after which the same invariant still fails, in passes:

1. a shorter fault phase (ending soon after the last fault, then halving it
   while the run still fails);
2. faults, by delta debugging (Zeller's ddmin): chunks of half, a quarter, ...
   down to single faults;
3. workers (coordinator scenarios: a left-out worker never starts, and the
   actions naming it go too), then scripted actions, the same way as faults;
4. client operations: the fewest first operations that still fail (a binary
   search on a limit), then chunks of those and single ones, as for faults.

Passes repeat while one of them removed something and time remains. Every
candidate is a complete deterministic run, so what remains is a real failing
schedule, not a guess; `Plan` writes it out for `raftcoord simulate --plan`.
Shrinking is bounded by wall-clock time (`time_budget`): when it runs out, the
smallest failing schedule found so far is returned.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

import attrs

from .plan_file import Plan, PlanError
from .runner import DEFAULT_WALL_BUDGET, RunResult, run_simulation
from .scenarios import get_scenario
from .world import SimConfig, World

DEFAULT_SHRINK_SECONDS = 120.0
"""Wall-clock seconds `--shrink` may spend (`--shrink-time`)."""

T = TypeVar("T")
Builder = Callable[[SimConfig], World]


@attrs.frozen
class ShrinkResult:
    """What shrinking found.

    Attributes:
        invariant: the invariant the original run broke (and the shrunk one breaks).
        original / shrunk: the schedules before and after.
        original_counts / shrunk_counts: faults, client operations issued,
            workers and actions of each (see `schedule_counts`).
        result: the shrunk schedule's run.
        runs: candidate runs tried.
        seconds: wall-clock time spent.
        complete: False when the time budget ran out before a pass found nothing
            more to remove.
    """

    invariant: str
    original: Plan
    shrunk: Plan
    original_counts: dict[str, int]
    shrunk_counts: dict[str, int]
    result: RunResult
    runs: int
    seconds: float
    complete: bool

    def describe(self) -> str:
        """What was removed, one line per part of the schedule."""
        lines = [f"shrunk seed {self.original.config.seed} ({self.invariant}) in {self.runs} runs, "
                 f"{self.seconds:.1f}s{'' if self.complete else ' (time budget spent)'}:"]
        before, after = self.original_counts, self.shrunk_counts
        for key in ("faults", "client ops", "workers", "actions"):
            if key in before:
                lines.append(f"  {key}: {before[key]} -> {after[key]} "
                             f"(removed {before[key] - after[key]})")
        if self.shrunk.config.duration != self.original.config.duration:
            lines.append(f"  fault phase: {self.original.config.duration:g}s -> "
                         f"{self.shrunk.config.duration:g}s")
        for fault in self.shrunk.faults:
            lines.append(f"  kept fault at {fault.time:.3f}s: {fault.describe()}")
        for action in self.shrunk.actions or ():
            lines.append(f"  kept action at {action.time:.3f}s: {action.kind} {list(action.args)}")
        return "\n".join(lines)


def plan_builder(plan: Plan, build: Builder | None = None) -> Builder:
    """A world builder for `plan`: the scenario's (or `build`), then the plan's
    coordinator actions and left-out workers.

    Raises:
        PlanError: the plan names workers the scenario does not have.
    """
    base = build or get_scenario(plan.scenario).build

    def build_plan(config: SimConfig) -> World:
        world = base(config)
        if plan.actions is None and not plan.workers_left_out:
            return world
        workers = getattr(world, "workers", None)
        if workers is None:
            raise PlanError(f"scenario {plan.scenario!r} has no workers or scripted actions")
        unknown = sorted(set(plan.workers_left_out) - set(workers))
        if unknown:
            raise PlanError(f"workers_left_out: scenario {plan.scenario!r} has no worker {unknown[0]!r}")
        if plan.actions is not None:
            world.actions = list(plan.actions)
        for worker_id in plan.workers_left_out:
            # Marked as gone before it ever starts: no start, no restart at the heal.
            workers[worker_id].left = True
        left_out = plan.workers_left_out
        world.actions = [a for a in world.actions if not (a.args and a.args[0] in left_out)]
        return world

    return build_plan


def run_plan(plan: Plan, build: Builder | None = None, wall_budget: float | None = DEFAULT_WALL_BUDGET,
             reproduce: str = "") -> tuple[RunResult, World]:
    """Run `plan`; `reproduce` replaces the result's reproduce command if given."""
    result, world = run_simulation(plan.config, plan.scenario, build=plan_builder(plan, build),
                                   wall_budget=wall_budget)
    if reproduce:
        result = attrs.evolve(result, reproduce=reproduce)
    return result, world


def plan_of_seed(config: SimConfig, scenario: str = "kv", build: Builder | None = None) -> Plan:
    """The schedule the seed's own run follows, written out: its fault plan, and for
    coordinator scenarios its scripted actions. Replaying it is the same run."""
    world = (build or get_scenario(scenario).build)(config)
    actions = getattr(world, "actions", None)
    return Plan(scenario, attrs.evolve(config, plan=tuple(world.plan)),
                actions=None if actions is None else tuple(actions))


def schedule_counts(plan: Plan, world: World) -> dict[str, int]:
    """The size of `plan` as run in `world`: faults, client operations issued, and
    for coordinator scenarios workers taking part and scripted actions."""
    counts = {"faults": len(plan.faults), "client ops": len(world.history)}
    workers = getattr(world, "workers", None)
    if workers is not None:
        counts["workers"] = sum(1 for w in workers.values() if w.id not in plan.workers_left_out)
        counts["actions"] = len(world.actions)
    return counts


def shrink(config: SimConfig, scenario: str = "kv", build: Builder | None = None,
           time_budget: float = DEFAULT_SHRINK_SECONDS, invariant: str | None = None,
           progress: Callable[[str], None] | None = None) -> ShrinkResult:
    """Shrink the failing run of `config` (see the module docstring).

    Args:
        build: the world builder (tests plant broken variants this way).
        time_budget: wall-clock seconds to spend at most.
        invariant: the invariant to keep failing (default: the run's first).
        progress: called with a line after each removal that held.

    Raises:
        ValueError: the run does not fail (or not with `invariant`).
    """
    started = time.perf_counter()
    deadline = started + time_budget
    original = plan_of_seed(config, scenario, build)
    first, first_world = run_plan(original, build)
    failed = {v.invariant for v in first.violations}
    if not failed:
        raise ValueError(f"seed {config.seed} does not fail; nothing to shrink")
    target = invariant or first.violations[0].invariant
    if target not in failed:
        raise ValueError(f"seed {config.seed} fails with {sorted(failed)}, not {target!r}")
    shrinker = _Shrinker(target, build, deadline, progress)
    best = shrinker.minimise(original, first, first_world)
    return ShrinkResult(
        invariant=target, original=original, shrunk=attrs.evolve(best.plan, expect=target),
        original_counts=schedule_counts(original, first_world),
        shrunk_counts=schedule_counts(best.plan, best.world),
        result=best.result, runs=shrinker.runs + 1, seconds=time.perf_counter() - started,
        complete=not shrinker.out_of_time())


@attrs.frozen
class _Failing:
    plan: Plan
    result: RunResult
    world: World


class _Shrinker:
    def __init__(self, invariant: str, build: Builder | None, deadline: float,
                 progress: Callable[[str], None] | None) -> None:
        self.invariant = invariant
        self.build = build
        self.deadline = deadline
        self.progress = progress or (lambda line: None)
        self.runs = 0

    def out_of_time(self) -> bool:
        return time.perf_counter() >= self.deadline

    def attempt(self, plan: Plan) -> _Failing | None:
        """Run `plan`; the failing run if it breaks the invariant still."""
        self.runs += 1
        # A candidate that hangs is no use: give it what is left of the budget.
        left = max(self.deadline - time.perf_counter(), 1.0)
        result, world = run_plan(plan, self.build, wall_budget=min(left, DEFAULT_WALL_BUDGET))
        if any(v.invariant == self.invariant for v in result.violations):
            return _Failing(plan, result, world)
        return None

    def minimise(self, plan: Plan, result: RunResult, world: World) -> _Failing:
        best = _Failing(plan, result, world)
        changed = True
        while changed and not self.out_of_time():
            changed = False
            for step in (self._shorten, self._faults, self._workers, self._actions,
                         self._op_limit, self._single_ops):
                found = step(best)
                if found is not None:
                    best, changed = found, True
                if self.out_of_time():
                    break
        return best

    # -- passes: each returns a smaller failing run, or None ---------------------

    def _shorten(self, best: _Failing) -> _Failing | None:
        """End the fault phase soon after the last fault (or scripted action) is
        over, then halve it while the run still fails."""
        found = None
        plan = best.plan
        ends = [f.time + f.duration for f in plan.faults if f.kind not in ("loss", "duplicate", "reorder")]
        ends += [a.time + 1.0 for a in plan.actions or ()]
        after_last = round(max(ends, default=0.0) + 2.0, 3)
        if after_last < plan.config.duration:
            result = self.attempt(self._cut_at(plan, after_last))
            if result is not None:
                best = found = result
                self.progress(f"fault phase {after_last:g}s")
        while not self.out_of_time():
            duration = round(best.plan.config.duration / 2, 3)
            if duration < 1.0:
                break
            result = self.attempt(self._cut_at(best.plan, duration))
            if result is None:
                break
            best = found = result
            self.progress(f"fault phase {duration:g}s")
        return found

    @staticmethod
    def _cut_at(plan: Plan, duration: float) -> Plan:
        faults = tuple(f for f in plan.faults if f.time < duration)
        actions = plan.actions
        if actions is not None:
            actions = tuple(a for a in actions if a.time < duration)
        return attrs.evolve(plan, config=attrs.evolve(plan.config, duration=duration, plan=faults),
                            actions=actions)

    def _faults(self, best: _Failing) -> _Failing | None:
        def with_faults(faults: Sequence) -> Plan:
            return attrs.evolve(best.plan, config=attrs.evolve(best.plan.config, plan=tuple(faults)))
        return self._ddmin(list(best.plan.faults), with_faults, "faults")

    def _actions(self, best: _Failing) -> _Failing | None:
        if best.plan.actions is None:
            return None

        def with_actions(actions: Sequence) -> Plan:
            return attrs.evolve(best.plan, actions=tuple(actions))
        return self._ddmin(list(best.plan.actions), with_actions, "actions")

    def _workers(self, best: _Failing) -> _Failing | None:
        workers = getattr(best.world, "workers", None)
        if not workers:
            return None
        found = None
        for worker_id in sorted(workers, reverse=True):
            if self.out_of_time():
                break
            plan = best.plan
            if worker_id in plan.workers_left_out or plan.actions is None:
                continue
            kept = len(workers) - len(plan.workers_left_out) - 1
            if kept < 1:
                break
            candidate = attrs.evolve(
                plan, workers_left_out=plan.workers_left_out | {worker_id},
                actions=tuple(a for a in plan.actions if not (a.args and a.args[0] == worker_id)))
            result = self.attempt(candidate)
            if result is not None:
                best = found = result
                self.progress(f"left out worker {worker_id}")
        return found

    def _op_limit(self, best: _Failing) -> _Failing | None:
        config = best.plan.config
        if config.skipped_client_ops:
            return None  # already shrunk one by one; a new limit would undo that
        low, high, found = 0, len(best.world.history), None  # `high` operations are enough
        while low < high and not self.out_of_time():
            middle = (low + high) // 2
            result = self.attempt(attrs.evolve(best.plan, config=attrs.evolve(config, client_op_limit=middle)))
            if result is None:
                low = middle + 1
            else:
                high, found = middle, result
        if found is not None:
            self.progress(f"client operations limited to the first {high}")
        return found

    def _single_ops(self, best: _Failing) -> _Failing | None:
        config = best.plan.config
        limit = config.client_op_limit
        if limit is None:
            return None
        kept = [n for n in range(limit) if n not in config.skipped_client_ops]

        def without(ops: Sequence[int]) -> Plan:
            skipped = frozenset(range(limit)) - frozenset(ops)
            return attrs.evolve(best.plan, config=attrs.evolve(config, skipped_client_ops=skipped))
        return self._ddmin(kept, without, "client operations")

    def _ddmin(self, items: list[T], make: Callable[[Sequence[T]], Plan], what: str) -> _Failing | None:
        """Remove chunks of `items` (halves, quarters, ..., single items) while the
        run still fails; the smallest failing run found, or None."""
        found = None
        chunk = max(len(items) // 2, 1)
        while items and not self.out_of_time():
            start = 0
            while start < len(items) and not self.out_of_time():
                candidate_items = items[:start] + items[start + chunk:]
                result = self.attempt(make(candidate_items))
                if result is not None:
                    removed = len(items) - len(candidate_items)
                    items, found = candidate_items, result
                    self.progress(f"removed {removed} {what}, {len(items)} left")
                else:
                    start += chunk
            if chunk == 1:
                break
            chunk = max(chunk // 2, 1)
        return found


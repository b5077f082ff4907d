"""`raftcoord simulate`: deterministic partition-and-crash simulations.

Examples:
    raftcoord simulate --seed 7
    raftcoord simulate --seeds 0..199 --duration 60 --faults all --json
    raftcoord simulate --count 50 --swarm --keep-going
    raftcoord simulate --seed 7 --report run7.html --check-determinism
    raftcoord simulate --seed 7 --shrink --plan-out seed7.json
    raftcoord simulate --plan seed7.json
"""

from __future__ import annotations

import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

import attrs
import click

from simulations.faults import ALL_KINDS, FaultConfig, parse_kinds
from simulations.network import Latency
from simulations.plan_file import PlanError, load_plan, save_plan
from simulations.runner import DEFAULT_WALL_BUDGET, RunResult, run_simulation
from simulations.shrink import DEFAULT_SHRINK_SECONDS, run_plan, shrink
from simulations.runner import check_determinism as rerun_and_compare
from simulations.scenarios import scenario_names
from simulations.world import SimConfig, Violation, WorkloadConfig

from . import exit_codes


def _parse_seed_range(ctx: click.Context, param: click.Parameter, text: str | None) -> range | None:
    """`--seeds A..B` (or a single seed N) as a non-empty range; click names the option on error."""
    if text is None:
        return None
    try:
        if ".." in text:
            low, high = text.split("..", 1)
            seeds = range(int(low), int(high) + 1)
        else:
            seeds = range(int(text), int(text) + 1)
    except ValueError:
        raise click.BadParameter(f"expected A..B (inclusive) or N, got {text!r}") from None
    if not seeds:
        raise click.BadParameter(f"{text!r} is empty: the first seed must not exceed the last")
    return seeds


def _check_output_path(path: str | None, option: str) -> None:
    """Refuse an output path that cannot be written, before any simulation runs.

    A '{seed}' placeholder is allowed; only the directory and the name's kind are
    checked, so a sweep never ends in a traceback after its work is done.
    """
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise click.BadParameter(f"directory {directory} does not exist", param_hint=option)
    if not os.access(directory, os.W_OK):
        raise click.BadParameter(f"directory {directory} is not writable", param_hint=option)
    if os.path.isdir(path):
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint=option)


def _interrupted(results: list["RunResult"], many: bool, as_json: bool) -> None:
    """Ctrl-C during a run: show what finished, then exit with the interrupted status."""
    click.echo(f"\ninterrupted after {len(results)} finished run(s)", err=True)
    if results and not as_json and many:
        _print_summary(results)
    sys.exit(exit_codes.INTERRUPTED)


@click.command("simulate", epilog=exit_codes.EPILOG)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a single run (or the first of --count).")
@click.option("--seeds", "seed_range", default=None, metavar="A..B", callback=_parse_seed_range,
              help="Run every seed from A to B inclusive (instead of --seed).")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Run COUNT seeds starting at --seed.")
@click.option("--scenario", type=click.Choice(scenario_names()), default="kv", show_default=True,
              help="What runs on the cluster.")
@click.option("--nodes", type=click.IntRange(min=1, max=9), default=5, show_default=True,
              help="Raft nodes in the simulated cluster.")
@click.option("--duration", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Simulated seconds of the fault phase.")
@click.option("--converge-within", type=click.FloatRange(min=0.5), default=30.0, show_default=True,
              help="Simulated seconds the healed phase may take to converge.")
@click.option("--faults", "fault_kinds", default="all", show_default=True,
              help=f"Comma-separated fault kinds, 'all' or 'none': {', '.join(ALL_KINDS)}.")
@click.option("--partition-rate", type=click.FloatRange(min=0), default=0.1,
              show_default=True, help="Partitions per simulated second.")
@click.option("--crash-rate", type=click.FloatRange(min=0), default=0.05, show_default=True, help="Crashes per simulated second.")
@click.option("--pause-rate", type=click.FloatRange(min=0), default=0.05, show_default=True, help="Pauses per simulated second.")
@click.option("--transfer-rate", type=click.FloatRange(min=0), default=0.03, show_default=True,
              help="Leadership transfers per simulated second.")
@click.option("--membership-rate", type=click.FloatRange(min=0), default=0.03, show_default=True,
              help="Membership faults per simulated second: a voter is removed from the configuration "
                   "and added back after a while.")
@click.option("--corner-rate", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Corner patterns per simulated second: leader churn right after partial "
                   "replication (churn), a leader deposed at once that keeps serving (deposed_read).")
@click.option("--loss", type=click.FloatRange(0, 1), default=0.05, show_default=True, help="Message loss probability.")
@click.option("--duplicate", type=click.FloatRange(0, 1), default=0.02, show_default=True, help="Message duplication probability.")
@click.option("--reorder", type=click.FloatRange(0, 1), default=0.1, show_default=True, help="Message reordering probability.")
@click.option("--swarm", is_flag=True, help="Per-seed random subset of fault kinds and rates (swarm testing).")
@click.option("--rate", type=click.FloatRange(min=0), default=50.0, show_default=True,
              help="Client operations per simulated second.")
@click.option("--clients", type=click.IntRange(min=1), default=10, show_default=True,
              help="Concurrent simulated clients issuing operations.")
@click.option("--keys", type=click.IntRange(min=1), default=5, show_default=True,
              help="Distinct keys the clients read and write (fewer keys, more contention).")
@click.option("--timeout", type=click.FloatRange(min=0.01), default=2.0, show_default=True,
              help="Client timeout in simulated seconds (the outcome is then unknown).")
@click.option("--disk", type=click.Choice(["file", "model"]), default="file", show_default=True,
              help="file: real DiskStorage on an in-memory file system; model: a log model.")
@click.option("--compact-every", type=click.IntRange(min=0), default=500, show_default=True,
              help="Snapshot and compact a node's log every N applied entries (0 = never).")
@click.option("--eager-commit", is_flag=True,
              help="Nodes tell followers of a new commit index at once (Config.eager_commit, the library "
                   "default) instead of with the next message (fewer events).")
@click.option("--unbatched-reads", is_flag=True,
              help="Each read starts its own heartbeat round (the library default) instead of sharing "
                   "the next one (Config.batch_reads).")
@click.option("--no-codec", is_flag=True, help="Pass messages as objects instead of encoded bytes (faster).")
@click.option("--max-events", type=click.IntRange(min=0), default=0,
              help="Event budget of one run; past it the run fails as 'livelock' "
                   "[default: 25,000 per simulated second of the run].")
@click.option("--max-wall", type=click.FloatRange(min=0), default=DEFAULT_WALL_BUDGET, show_default=True,
              help="Wall-clock seconds one run may take; past it the run fails as 'stuck'.")
@click.option("--shrink", "do_shrink", is_flag=True,
              help="If the seed fails, shrink its schedule (faults, client operations, workers, "
                   "scripted actions) while the same invariant still fails, and write the smallest "
                   "one found as a plan file (--plan-out).")
@click.option("--shrink-time", type=click.FloatRange(min=0), default=DEFAULT_SHRINK_SECONDS,
              show_default=True, help="Wall-clock seconds shrinking may take.")
@click.option("--plan-out", type=click.Path(dir_okay=False), default=None,
              help="Where --shrink writes the plan [default: shrunk-<scenario>-seed<N>.json].")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), default=None,
              help="Run the schedule of a plan file (written by --shrink; format in "
                   "simulations/plan_file.py). It sets every run option; others are ignored.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run on stdout.")
@click.option("--keep-going", is_flag=True, help="Do not stop at the first failing seed.")
@click.option("--check-determinism", is_flag=True, help="Run every seed twice and compare trace hashes.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Write an HTML timeline; with several seeds '{seed}' in the name is replaced, "
                   "otherwise only the first failing run (or the single run) is written.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True,
              help="Run seeds in this many processes (0 = one per CPU). Each run is still "
                   "deterministic and results are reported in seed order.")
@click.option("--verbose", "-v", is_flag=True, help="Show the raft library's log messages.")
@click.pass_context
def simulate(ctx, seed, seed_range, count, scenario, nodes, duration, converge_within, fault_kinds,
             partition_rate, crash_rate, pause_rate, transfer_rate, membership_rate, corner_rate, loss, duplicate,
             reorder, swarm, rate, clients, keys, timeout, disk, compact_every, eager_commit, unbatched_reads, no_codec, max_events, max_wall, do_shrink, shrink_time, plan_out, plan_path, as_json, keep_going,
             check_determinism, report_path, jobs, verbose):
    """Run deterministic simulations of the cluster under faults and check them.

    Each run has a fault phase (--duration) and a healed phase that must converge.
    Raft safety is checked after every step, linearizability of the client history
    at the end. A failure prints the seed, the invariant, the last events and the
    command line that reproduces it; the exit status is then 1. Ctrl-C prints the
    runs that finished and exits with status 130.
    """
    if not verbose:
        logging.getLogger("raft").setLevel(logging.CRITICAL)
    if seed_range is not None and count is not None:
        raise click.UsageError("use either --seeds or --count, not both")
    if seed_range is not None and ctx.get_parameter_source("seed") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("use either --seeds or --seed, not both")
    _check_output_path(report_path, "--report")
    _check_output_path(plan_out, "--plan-out")
    if plan_path is not None:
        if seed_range is not None or count is not None or do_shrink:
            raise click.UsageError("--plan runs one schedule: drop --seeds, --count and --shrink")
        _run_plan_file(plan_path, as_json, max_wall, report_path)
        return
    if do_shrink and (seed_range is not None or count is not None):
        raise click.UsageError("--shrink takes one seed: use --seed N")
    seeds = seed_range if seed_range is not None else range(seed, seed + (count or 1))
    jobs = jobs or os.cpu_count() or 1
    try:
        if not fault_kinds.strip():
            raise ValueError("empty; give fault kinds, 'all' or 'none'")
        kinds = parse_kinds(fault_kinds)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    faults = FaultConfig(kinds=kinds, partition_rate=partition_rate, crash_rate=crash_rate,
                         pause_rate=pause_rate, transfer_rate=transfer_rate,
                         membership_rate=membership_rate, corner_rate=corner_rate, loss=loss, duplicate=duplicate, reorder=reorder,
                         swarm=swarm)
    workload = WorkloadConfig(rate=rate, clients=clients, keys=keys, timeout=timeout)

    def config_for(s: int) -> SimConfig:
        return SimConfig(seed=s, nodes=nodes, duration=duration, converge_within=converge_within,
                         faults=faults, workload=workload, disk=disk, codec=not no_codec,
                         compact_every=compact_every, eager_commit=eager_commit,
                         batch_reads=not unbatched_reads, max_events=max_events,
                         latency=Latency())

    if do_shrink:
        _shrink_seed(config_for(seed), scenario, shrink_time, plan_out, max_wall, as_json)
        return
    results: list[RunResult] = []
    failed = False
    many = len(seeds) > 1
    per_seed_reports = bool(report_path) and (not many or "{seed}" in report_path)
    runs = _run_in_order(seeds, config_for, scenario, check_determinism,
                         report_path if per_seed_reports else None, jobs, max_wall)
    try:
        with click.progressbar(runs, length=len(seeds), label="simulating", file=sys.stderr,
                               show_pos=True, hidden=not many) as bar:
            for result in bar:
                results.append(result)
                if result.linearizable is None and result.ok:
                    click.echo(f"seed {result.seed}: warning: linearizability check inconclusive "
                               f"(search budget exhausted)", err=True)
                if per_seed_reports:
                    _say_report(report_path.replace("{seed}", str(result.seed)), as_json)
                elif report_path and not result.ok and not failed:
                    # Runs are deterministic: replaying the seed rebuilds the same world.
                    _run_one(config_for(result.seed), scenario, False, report_path, max_wall)
                    _say_report(report_path, as_json)
                if as_json:
                    click.echo(json.dumps(result.to_json(), sort_keys=True))
                if not result.ok:
                    failed = True
                    if not as_json:
                        click.echo(("\n" if many else "") + result.explain(), err=many)
                    if not keep_going:
                        break
    except KeyboardInterrupt:
        runs.close()
        _interrupted(results, many, as_json)
    runs.close()
    not_run = len(seeds) - len(results)
    if not_run:
        click.echo(f"stopped at the first failure: {not_run} of {len(seeds)} seeds not run "
                   f"(--keep-going runs them all)", err=True)
    if not as_json:
        if many:
            _print_summary(results)
        elif results[0].ok:
            _print_single(results[0])
    sys.exit(exit_codes.CHECK_FAILED if failed else exit_codes.OK)


def _say_report(path: str, as_json: bool) -> None:
    # With --json, stdout carries only JSON lines.
    click.echo(f"report: {path}", err=as_json)



def _run_plan_file(path: str, as_json: bool, max_wall: float, report_path: str | None) -> None:
    try:
        plan = load_plan(path)
        result, world = run_plan(plan, wall_budget=max_wall, reproduce=f"raftcoord simulate --plan {path}")
    except PlanError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exit_codes.CORRUPT_DATA)
    if report_path:
        from simulations.report import write_report

        written = report_path.replace("{seed}", str(plan.config.seed))
        write_report(written, world, result)
        _say_report(written, as_json)
    if as_json:
        click.echo(json.dumps(result.to_json(), sort_keys=True))
    elif result.ok:
        _print_single(result)
    else:
        click.echo(result.explain())
    if plan.expect and not as_json:
        kept = any(v.invariant == plan.expect for v in result.violations)
        click.echo(f"plan expects {plan.expect}: {'reproduced' if kept else 'NOT reproduced'}")
    sys.exit(exit_codes.OK if result.ok else exit_codes.CHECK_FAILED)


def _shrink_seed(config: SimConfig, scenario: str, shrink_time: float, plan_out: str | None,
                 max_wall: float, as_json: bool) -> None:
    """`--shrink`: shrink a failing seed and write its smallest schedule."""
    result, _ = run_simulation(config, scenario, wall_budget=max_wall)
    if result.ok:
        click.echo(f"seed {config.seed}: ok; nothing to shrink")
        sys.exit(exit_codes.OK)
    click.echo(result.explain(), err=True)
    click.echo(f"shrinking seed {config.seed} (at most {shrink_time:g}s) ...", err=True)
    found = shrink(config, scenario, time_budget=shrink_time,
                   progress=lambda line: click.echo(f"  {line}", err=True))
    path = plan_out or f"shrunk-{scenario}-seed{config.seed}.json"
    save_plan(path, found.shrunk)
    reproduce = f"raftcoord simulate --plan {path}"
    if as_json:
        click.echo(json.dumps({
            "seed": config.seed, "scenario": scenario, "invariant": found.invariant,
            "plan": path, "reproduce": reproduce, "runs": found.runs,
            "seconds": round(found.seconds, 3), "complete": found.complete,
            "before": found.original_counts, "after": found.shrunk_counts,
            "result": attrs.evolve(found.result, reproduce=reproduce).to_json()}, sort_keys=True))
    else:
        click.echo(found.describe())
        click.echo(f"wrote {path}")
        click.echo(f"reproduce: {reproduce}")
    sys.exit(exit_codes.CHECK_FAILED)


def _run_one(config: SimConfig, scenario: str, check_determinism: bool,
             report_path: str | None, max_wall: float = DEFAULT_WALL_BUDGET) -> RunResult:
    """One seed: run, optionally re-run for the determinism check, write its report."""
    result, world = run_simulation(config, scenario, wall_budget=max_wall)
    if check_determinism:
        same, _, again = rerun_and_compare(config, scenario, result)
        result = _with_determinism(result, same, again)
    if report_path:
        from simulations.report import write_report

        write_report(report_path.replace("{seed}", str(config.seed)), world, result)
    return result


def _run_in_order(seeds: range, config_for, scenario: str, check_determinism: bool,
                  report_path: str | None, jobs: int,
                  max_wall: float = DEFAULT_WALL_BUDGET) -> Iterator[RunResult]:
    """Results in seed order; with jobs > 1, seeds run in that many processes.

    Closing the generator early (a failure without --keep-going) cancels the seeds
    not yet started.
    """
    if jobs <= 1 or len(seeds) <= 1:
        for s in seeds:
            yield _run_one(config_for(s), scenario, check_determinism, report_path, max_wall)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_quiet_worker) as pool:
        futures = [pool.submit(_run_one, config_for(s), scenario, check_determinism, report_path, max_wall)
                   for s in seeds]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _quiet_worker() -> None:
    logging.getLogger("raft").setLevel(logging.CRITICAL)


def _with_determinism(result: RunResult, same: bool, again: RunResult) -> RunResult:
    result = attrs.evolve(result, determinism=same)
    if not same:
        detail = (f"re-running seed {result.seed} gave trace hash {again.trace_hash} "
                  f"({again.events} events), first run {result.trace_hash} ({result.events} events)")
        result = attrs.evolve(result, violations=result.violations + (
            Violation("determinism", detail, result.simulated_seconds),))
    return result


def _print_single(r: RunResult) -> None:
    ops = r.client_ops
    click.echo(f"seed {r.seed}: ok — {r.simulated_seconds:.1f} simulated s in {r.wall_seconds:.2f} wall s "
               f"({r.simulated_seconds / max(r.wall_seconds, 1e-9):.0f}x), {r.events} events, "
               f"{r.elections} elections, max unavailability {r.max_unavailability_seconds:.2f}s")
    click.echo(f"  client ops: {ops['ok']} ok, {ops['fail']} failed, {ops['unknown']} unknown; "
               f"linearizable: {r.linearizable}")
    extra = r.extra
    if "partitions" in extra:
        click.echo(f"  coordinator: {extra['partitions']} partitions on {extra['workers']} workers; "
                   f"moves {extra['moves']} (lower bound {extra['moves_lower_bound']}); "
                   f"max imbalance {extra['max_imbalance']}; failover max {extra['failover_seconds_max']}s; "
                   f"double ownership {extra['double_ownership']}")
    if r.determinism is not None:
        click.echo(f"  deterministic: {r.determinism}")
    click.echo(f"  trace hash {r.trace_hash}")


def _print_summary(results: list[RunResult]) -> None:
    ok = sum(r.ok for r in results)
    sim = sum(r.simulated_seconds for r in results)
    wall = sum(r.wall_seconds for r in results)
    click.echo(f"{'seed':>8} {'ok':>4} {'sim s':>8} {'wall s':>7} {'events':>8} {'elect':>5} "
               f"{'unavail':>7} {'ops ok':>6} {'unk':>4}  violations")
    for r in results:
        click.echo(f"{r.seed:>8} {'yes' if r.ok else 'NO':>4} {r.simulated_seconds:>8.1f} {r.wall_seconds:>7.2f} "
                   f"{r.events:>8} {r.elections:>5} {r.max_unavailability_seconds:>7.2f} "
                   f"{r.client_ops['ok']:>6} {r.client_ops['unknown']:>4}  "
                   f"{', '.join(v.invariant for v in r.violations)}")
    click.echo(f"{ok}/{len(results)} runs ok; {sim:.0f} simulated s in {wall:.1f} wall s "
               f"({sim / max(wall, 1e-9):.0f}x)")

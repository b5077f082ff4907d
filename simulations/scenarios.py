"""Named scenarios: what runs on the simulated cluster.

A scenario builds the `World` for a `SimConfig`. The default, "kv", runs the
replicated key-value store with its client workload. The coordinator scenarios
(worker leases, partition ownership) register here too, with `register`, so that
`raftcoord simulate --scenario NAME` and the seed sweeps pick them up unchanged:
subclass `World` (its `state_machine`, client hooks and checks), and register a
`Scenario` whose `build` returns it. The CLI lists registered names in `--help`.
"""

from __future__ import annotations

from typing import Callable

import attrs

from .world import SimConfig, World


@attrs.frozen
class Scenario:
    """A named way to build a world.

    Attributes:
        name: what `--scenario` takes.
        description: one line for `--help` and listings.
        build: makes the (not yet started) world for a configuration.
    """

    name: str
    description: str
    build: Callable[[SimConfig], World]


_SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.name in _SCENARIOS:
        raise ValueError(f"scenario {scenario.name!r} is already registered")
    _SCENARIOS[scenario.name] = scenario
    return scenario


def get_scenario(name: str) -> Scenario:
    try:
        return _SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(_SCENARIOS))}") from None


def scenario_names() -> list[str]:
    return sorted(_SCENARIOS)


register(Scenario("kv", "replicated key-value store: put, get (read index), cas", World))

# The coordinator scenarios register themselves (imported last: they import `register`).
from . import coord_scenarios  # noqa: E402,F401

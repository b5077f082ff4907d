"""simulations: a deterministic world that drives the real raft core and coordinator
logic under a virtual clock, a faulty network and faulty disks.

One module per concern:

* `rng`: one seed -> an independent `random.Random` per purpose;
* `world`: virtual clock, event queue, nodes driven through the `Ready` contract,
  clients, crash / restart / pause, the healed phase and convergence;
* `network`: latency, loss, duplication, reordering, partitions (symmetric, one-way,
  isolate, bridge);
* `disk`: per-node disks, durable only at fsync (real `DiskStorage` on a
  `MemoryFileSystem`, or a model), with a durability shadow for the checker;
* `faults`: fault plans and swarm mode;
* `kv`: the replicated key-value state machine the clients use;
* `history`, `linearizability`: the client history and its per-key checker;
* `safety`: Raft's safety invariants, checked after every step;
* `scenarios`: named ways to build a world (`--scenario`); `runner`: run + verdict +
  reproducing command; `report`: the HTML timeline;
* `coord_world`, `coord_workers`, `coord_checkers`, `coord_scenarios`: the coordinator
  in the same world — worker processes, its checkers (one owner at a time, fencing,
  failover bound, balance and minimal moves) and its named scenarios.

Entry point: `raftcoord simulate` (cli/simulate_cmd.py) or `runner.run_simulation`.
"""

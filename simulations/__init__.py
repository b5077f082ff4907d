"""simulations: a deterministic world that drives the real raft core and coordinator
logic under a virtual clock, a faulty network and faulty disks."""

"""Three in-memory raft nodes: elect a leader, replicate proposals, print what happens.

Run it with `python examples/three_nodes.py`. Everything here is the embedder's job:
moving messages between nodes, persisting what `Ready` says, applying committed
entries. The raft library itself does no I/O.
"""

from collections import deque

from raft import Config, EntryType, MemoryStorage, Role
from raft.node import RawNode

ids = (1, 2, 3)
storages = {i: MemoryStorage() for i in ids}
nodes = {i: RawNode(Config(id=i, voters=ids, seed=7), storages[i]) for i in ids}
applied = {i: [] for i in ids}  # each node's state machine: a list of commands
network = deque()  # messages in flight


def handle_ready(i):
    """The driver loop of one node: persist, send, apply, advance."""
    node = nodes[i]
    while node.has_ready():
        rd = node.ready()
        if rd.soft_state is not None:
            print(f"  node {i}: now {rd.soft_state.role.value}, leader {rd.soft_state.leader}")
        if rd.snapshot is not None:
            storages[i].apply_snapshot(rd.snapshot)
        # 1. persist hard state and entries BEFORE sending anything
        storages[i].save(rd.hard_state, rd.entries, sync=rd.must_sync)
        # 2. send
        network.extend(rd.messages)
        # 3. apply committed entries in order
        for entry in rd.committed_entries:
            if entry.type is EntryType.NORMAL and entry.data:
                applied[i].append(entry.data.decode())
            elif entry.type is EntryType.CONF_CHANGE:
                node.apply_conf_change(entry)
        # 4. tell the node it is done
        node.advance(rd)


def run_network():
    for i in ids:
        handle_ready(i)
    while network:
        message = network.popleft()
        nodes[message.to].step(message)
        handle_ready(message.to)


ticks = 0
print("ticking until a leader is elected...")
while not any(n.role is Role.LEADER for n in nodes.values()):
    for node in nodes.values():
        node.tick()
    run_network()
    ticks += 1
leader = next(i for i, n in nodes.items() if n.role is Role.LEADER)
print(f"node {leader} leads term {nodes[leader].term} after {ticks} ticks")

for command in ("set x=1", "set y=2", "del x"):
    index = nodes[leader].propose(command.encode())
    print(f"proposed {command!r} at index {index}")
run_network()
for node in nodes.values():  # the next heartbeat carries the commit index
    node.tick()
run_network()

for i in ids:
    print(f"node {i} applied {applied[i]} (commit index {nodes[i].commit_index})")
assert applied[1] == applied[2] == applied[3] == ["set x=1", "set y=2", "del x"]

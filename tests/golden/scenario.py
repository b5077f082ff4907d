"""The commands behind the golden files (see ``make_golden.py``).

Applied in order to ``CoordinatorState(CONFIG)``, they use every command kind and
produce every result kind, and leave a state with workers in every state, replicated
partitions, holds, a handoff in flight, quarantined partitions, KV records and client
sessions. Do not edit: the golden files were written from exactly these values.
"""

from __future__ import annotations

from coordinator import commands as c
from coordinator.config import CoordinatorConfig

CONFIG = CoordinatorConfig(revoke_timeout=10.0, restart_delay=30.0,
                           quarantine_threshold=2, quarantine_window=60.0)


def _reg(worker: str, zone: str, now: float, **extra) -> c.RegisterWorker:
    return c.RegisterWorker(worker_id=worker, address=f"{worker}.example:7000", zone=zone,
                            now=now, **extra)


COMMANDS: list = [
    _reg("w1", "z-a", 0.0, labels=(("rack", "r1"), ("disk", "ssd"))),
    _reg("w2", "z-b", 0.0, capacity=2),
    _reg("w3", "z-a", 0.0),
    _reg("w4", "z-c", 0.0),
    _reg("w5", "z-b", 0.0),
    _reg("w6", "z-c", 0.0),
    _reg("w7", "z-c", 0.0),
    _reg("w8", "z-a", 0.0),
    _reg("w9", "z-b", 0.0),
    c.CreatePartitionGroup(name="orders", count=3, replication_factor=2, now=0.5),
    c.CreatePartitionGroup(name="logs", count=2, weight=2, now=0.5),
    c.CreatePartitionGroup(name="fragile", count=2, now=0.5),
    c.CreatePartitionGroup(name="tmp", count=1, now=0.5),
    c.Assign(partition_id="orders/0", slot=0, worker_id="w1", epoch=1, now=1.0),
    c.Assign(partition_id="orders/0", slot=1, worker_id="w2", epoch=2, now=1.0),
    c.Assign(partition_id="orders/1", slot=0, worker_id="w3", epoch=1, now=1.0),
    c.Assign(partition_id="orders/1", slot=1, worker_id="w4", epoch=2, now=1.0),
    c.Assign(partition_id="orders/2", slot=0, worker_id="w2", epoch=1, now=1.0),
    c.Assign(partition_id="orders/2", slot=1, worker_id="w5", epoch=2, now=1.0),
    c.Assign(partition_id="logs/0", slot=0, worker_id="w4", epoch=1, now=1.0),
    c.Assign(partition_id="logs/1", slot=0, worker_id="w5", epoch=1, now=1.0),
    c.Assign(partition_id="tmp/0", slot=0, worker_id="w8", epoch=1, now=1.0),
    # A handoff that completes, one that is forced, and one left in flight.
    c.Revoke(partition_id="orders/2", slot=1, worker_id="w5", epoch=2, target="w4", now=2.0),
    c.Released(partition_id="orders/2", slot=1, worker_id="w5", epoch=2, now=2.5),
    c.Assign(partition_id="orders/2", slot=1, worker_id="w4", epoch=3, now=2.5),
    c.Revoke(partition_id="logs/1", slot=0, worker_id="w5", epoch=1, now=3.0),
    c.ForceRevoke(partition_id="logs/1", slot=0, worker_id="w5", epoch=1, now=13.0),
    c.Revoke(partition_id="orders/1", slot=0, worker_id="w3", epoch=2, target="w1", now=14.0),
    # Two deaths of the owners of the fragile partitions quarantine them.
    c.Assign(partition_id="fragile/0", slot=0, worker_id="w6", epoch=1, now=15.0),
    c.Assign(partition_id="fragile/1", slot=0, worker_id="w6", epoch=1, now=15.0),
    c.DrainWorker(worker_id="w6", now=15.5),
    c.ExpireWorker(worker_id="w6", now=16.0),
    c.Assign(partition_id="fragile/0", slot=0, worker_id="w7", epoch=2, now=17.0),
    c.Assign(partition_id="fragile/1", slot=0, worker_id="w7", epoch=2, now=17.0),
    c.DrainWorker(worker_id="w7", now=17.5),
    c.ExpireWorker(worker_id="w7", now=18.0),
    c.ReleaseQuarantine(partition_id="fragile/1", now=19.0),
    # An ACTIVE worker's death holds its slot; a restart within the window gets it back.
    c.ExpireWorker(worker_id="w8", now=20.0),
    _reg("w8", "z-a", 21.0),
    c.ExpireWorker(worker_id="w8", now=22.0),
    c.DeregisterWorker(worker_id="w9", now=22.0),
    c.DrainWorker(worker_id="w5", now=23.0),
    c.DrainWorker(worker_id="w3", now=23.0),
    c.UndrainWorker(worker_id="w5", now=23.5),
    c.DeletePartitionGroup(name="logs", now=24.0),
    c.KvPut(key="config/a", value=b"\x00\x01binary"),
    c.KvCas(key="config/b", expected_version=0, value=b"bee"),
    c.KvCas(key="config/b", expected_version=7, value=b"refused"),
    c.KvDelete(key="config/a", expected_version=1),
    c.KvGet(key="config/b"),
    c.KvList(prefix="config/", limit=10),
    c.FencedPut(key="orders/0/offset", value=b"42", partition_id="orders/0", epoch=2),
    c.Batch(commands=(
        c.KvPut(key="batch/1", value=b"one"),
        c.KvDelete(key="missing"),
        c.Assign(partition_id="orders/1", slot=1, worker_id="w1", epoch=9, now=25.0),
    )),
    c.ClientRequest(client_id="client-1", seq=1,
                    command=c.KvPut(key="session/x", value=b"x1")),
    c.ClientRequest(client_id="client-1", seq=2, acked_below=1,
                    command=c.KvCas(key="session/x", expected_version=6, value=b"x2")),
    c.ClientRequest(client_id="client-1", seq=2, acked_below=1,
                    command=c.KvCas(key="session/x", expected_version=6, value=b"x2")),
    c.ClientRequest(client_id="client-2", seq=5,
                    command=c.ExpireWorker(worker_id="nobody", now=26.0)),
    c.ExpireWorker(worker_id="w4", now=26.5),
]


RESULTS: list = [
    # What applying each command returned when the golden files were written.
    c.WorkerRegistered(worker_id='w1', created=True),
    c.WorkerRegistered(worker_id='w2', created=True),
    c.WorkerRegistered(worker_id='w3', created=True),
    c.WorkerRegistered(worker_id='w4', created=True),
    c.WorkerRegistered(worker_id='w5', created=True),
    c.WorkerRegistered(worker_id='w6', created=True),
    c.WorkerRegistered(worker_id='w7', created=True),
    c.WorkerRegistered(worker_id='w8', created=True),
    c.WorkerRegistered(worker_id='w9', created=True),
    c.GroupChanged(name='orders', count=3, created=True),
    c.GroupChanged(name='logs', count=2, created=True),
    c.GroupChanged(name='fragile', count=2, created=True),
    c.GroupChanged(name='tmp', count=1, created=True),
    c.Assigned(partition_id='orders/0', slot=0, worker_id='w1', epoch=1),
    c.Assigned(partition_id='orders/0', slot=1, worker_id='w2', epoch=2),
    c.Assigned(partition_id='orders/1', slot=0, worker_id='w3', epoch=1),
    c.Assigned(partition_id='orders/1', slot=1, worker_id='w4', epoch=2),
    c.Assigned(partition_id='orders/2', slot=0, worker_id='w2', epoch=1),
    c.Assigned(partition_id='orders/2', slot=1, worker_id='w5', epoch=2),
    c.Assigned(partition_id='logs/0', slot=0, worker_id='w4', epoch=1),
    c.Assigned(partition_id='logs/1', slot=0, worker_id='w5', epoch=1),
    c.Assigned(partition_id='tmp/0', slot=0, worker_id='w8', epoch=1),
    c.RevokeStarted(partition_id='orders/2', slot=1, worker_id='w5', epoch=2, deadline=12.0),
    c.SlotReleased(partition_id='orders/2', slot=1, worker_id='w5', epoch=2, forced=False),
    c.Assigned(partition_id='orders/2', slot=1, worker_id='w4', epoch=3),
    c.RevokeStarted(partition_id='logs/1', slot=0, worker_id='w5', epoch=1, deadline=13.0),
    c.SlotReleased(partition_id='logs/1', slot=0, worker_id='w5', epoch=1, forced=True),
    c.RevokeStarted(partition_id='orders/1', slot=0, worker_id='w3', epoch=2, deadline=24.0),
    c.Assigned(partition_id='fragile/0', slot=0, worker_id='w6', epoch=1),
    c.Assigned(partition_id='fragile/1', slot=0, worker_id='w6', epoch=1),
    c.WorkerStateChanged(worker_id='w6', state=c.WorkerState.DRAINING),
    c.WorkerRemoved(
        worker_id='w6',
        freed=(
            c.SlotRef(partition_id='fragile/0', slot=0, epoch=1),
            c.SlotRef(partition_id='fragile/1', slot=0, epoch=1),
        ),
    ),
    c.Assigned(partition_id='fragile/0', slot=0, worker_id='w7', epoch=2),
    c.Assigned(partition_id='fragile/1', slot=0, worker_id='w7', epoch=2),
    c.WorkerStateChanged(worker_id='w7', state=c.WorkerState.DRAINING),
    c.WorkerRemoved(
        worker_id='w7',
        freed=(
            c.SlotRef(partition_id='fragile/0', slot=0, epoch=2),
            c.SlotRef(partition_id='fragile/1', slot=0, epoch=2),
        ),
        quarantined=('fragile/0', 'fragile/1',),
    ),
    c.QuarantineReleased(partition_id='fragile/1'),
    c.WorkerRemoved(worker_id='w8', held=(c.SlotRef(partition_id='tmp/0', slot=0, epoch=1),)),
    c.WorkerRegistered(
        worker_id='w8',
        created=False,
        restored=(c.SlotRef(partition_id='tmp/0', slot=0, epoch=2),),
    ),
    c.WorkerRemoved(
        worker_id='w8',
        freed=(c.SlotRef(partition_id='tmp/0', slot=0, epoch=2),),
        quarantined=('tmp/0',),
    ),
    c.WorkerRemoved(worker_id='w9'),
    c.WorkerStateChanged(worker_id='w5', state=c.WorkerState.DRAINING),
    c.WorkerStateChanged(worker_id='w3', state=c.WorkerState.DRAINING),
    c.WorkerStateChanged(worker_id='w5', state=c.WorkerState.ACTIVE),
    c.GroupChanged(name='logs', count=2, created=False),
    c.KvValue(key='config/a', value=b'\x00\x01binary', version=1),
    c.KvValue(key='config/b', value=b'bee', version=2),
    c.Error(code=c.ErrorCode.VERSION_MISMATCH, message='config/b is at version 2'),
    c.KvValue(key='config/a', value=None, version=0),
    c.KvValue(key='config/b', value=b'bee', version=2),
    c.KvEntries(entries=(c.KvValue(key='config/b', value=b'bee', version=2),)),
    c.KvValue(key='orders/0/offset', value=b'42', version=4),
    c.BatchResult(
        results=(
            c.KvValue(key='batch/1', value=b'one', version=5),
            c.KvValue(key='missing', value=None, version=0),
            c.Error(code=c.ErrorCode.SLOT_OCCUPIED, message="('orders/1', 1) owned by w4"),
        ),
    ),
    c.KvValue(key='session/x', value=b'x1', version=6),
    c.KvValue(key='session/x', value=b'x2', version=7),
    c.KvValue(key='session/x', value=b'x2', version=7),
    c.Error(code=c.ErrorCode.UNKNOWN_WORKER, message='nobody'),
    c.WorkerRemoved(
        worker_id='w4',
        held=(
            c.SlotRef(partition_id='orders/1', slot=1, epoch=2),
            c.SlotRef(partition_id='orders/2', slot=1, epoch=3),
        ),
    ),
]


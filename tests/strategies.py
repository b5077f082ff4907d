"""Hypothesis strategies for raft values, shared by the test suite.

Every strategy produces values the codec accepts (so `decode(encode(x)) == x`), which
also makes them valid inputs for the core: node ids are >= 1, entries inside an
`AppendEntries` are consecutive from ``prev_index + 1`` with non-decreasing terms no
larger than the message term, and CONF_CHANGE entries carry an encoded change and the resulting configuration.

Integer fields cover the whole wire range [0, 2**64 - 1] by default; pass a smaller
``max_value``/``max_id`` where a test wants realistic numbers.
"""

from __future__ import annotations

from hypothesis import strategies as st

from raft.codec import MAX_UINT, encode_conf_change_entry
from raft.types import (
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMetadata,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

__all__ = [
    "uints",
    "node_ids",
    "payloads",
    "conf_changes",
    "entries",
    "entry_runs",
    "conf_states",
    "snapshot_metadata",
    "hard_states",
    "vote_requests",
    "vote_responses",
    "append_entries",
    "append_responses",
    "heartbeats",
    "heartbeat_responses",
    "install_snapshots",
    "snapshot_responses",
    "timeout_nows",
    "read_index_requests",
    "read_index_responses",
    "MESSAGE_STRATEGIES",
    "messages",
]


def uints(max_value: int = MAX_UINT) -> st.SearchStrategy[int]:
    """Terms, indexes, offsets: 0 .. max_value, biased to small values and boundaries."""
    return st.one_of(
        st.integers(0, min(max_value, 30)),
        st.sampled_from([v for v in (23, 24, 255, 256, 2**16, 2**32, MAX_UINT) if v <= max_value]),
        st.integers(0, max_value),
    )


def node_ids(max_id: int = MAX_UINT) -> st.SearchStrategy[int]:
    """Node ids >= 1 (0 means "none" and is not a node)."""
    return st.one_of(st.integers(1, min(max_id, 9)), st.integers(1, max_id))


def payloads(max_size: int = 64) -> st.SearchStrategy[bytes]:
    """Opaque application bytes (entry data, contexts, snapshot chunks)."""
    return st.binary(max_size=max_size)


def conf_changes(max_id: int = MAX_UINT) -> st.SearchStrategy[ConfChange]:
    return st.builds(
        ConfChange,
        type=st.sampled_from(ConfChangeType),
        node_id=node_ids(max_id),
        context=payloads(16),
    )


def _entry_kind_and_data() -> st.SearchStrategy[tuple[EntryType, bytes]]:
    return st.one_of(
        st.tuples(st.just(EntryType.NORMAL), payloads()),
        st.tuples(conf_changes(), conf_states()).map(
            lambda pair: (EntryType.CONF_CHANGE, encode_conf_change_entry(*pair))
        ),
    )


@st.composite
def entries(draw: st.DrawFn, max_value: int = MAX_UINT) -> Entry:
    """A single entry (NORMAL with arbitrary data, or CONF_CHANGE with a valid change)."""
    entry_type, data = draw(_entry_kind_and_data())
    return Entry(
        term=draw(uints(max_value)),
        index=draw(uints(max_value)),
        type=entry_type,
        data=data,
    )


@st.composite
def entry_runs(
    draw: st.DrawFn,
    prev_index: int,
    prev_term: int,
    max_term: int,
    max_size: int = 8,
) -> tuple[Entry, ...]:
    """Entries as a leader appends them: indexes from prev_index + 1, terms
    non-decreasing in [max(prev_term, 1), max_term]. Empty when no such term exists
    or no index fits below 2**64."""
    low = max(prev_term, 1)
    room = MAX_UINT - prev_index
    if low > max_term or room <= 0:
        return ()
    count = draw(st.integers(0, min(max_size, room)))
    run = []
    term = low
    for offset in range(1, count + 1):
        term = draw(st.one_of(st.just(term), st.integers(term, max_term)))
        entry_type, data = draw(_entry_kind_and_data())
        run.append(Entry(term=term, index=prev_index + offset, type=entry_type, data=data))
    return tuple(run)


@st.composite
def conf_states(draw: st.DrawFn, max_id: int = MAX_UINT, max_size: int = 7) -> ConfState:
    """Disjoint voter and learner sets of positive ids (either may be empty)."""
    members = draw(st.lists(node_ids(max_id), unique=True, max_size=max_size))
    split = draw(st.integers(0, len(members)))
    return ConfState(voters=members[:split], learners=members[split:])


def snapshot_metadata(max_value: int = MAX_UINT) -> st.SearchStrategy[SnapshotMetadata]:
    return st.builds(
        SnapshotMetadata, index=uints(max_value), term=uints(max_value), conf_state=conf_states()
    )


def hard_states(max_value: int = MAX_UINT) -> st.SearchStrategy[HardState]:
    """Vote may be 0 ("no vote")."""
    return st.builds(
        HardState,
        term=uints(max_value),
        vote=st.one_of(st.just(0), node_ids()),
        commit=uints(max_value),
    )


# Each message strategy draws term, sender and to first, like the wire layout.


def vote_requests() -> st.SearchStrategy[VoteRequest]:
    return st.builds(
        VoteRequest,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        last_log_index=uints(),
        last_log_term=uints(),
        pre_vote=st.booleans(),
        transfer=st.booleans(),
    )


def vote_responses() -> st.SearchStrategy[VoteResponse]:
    return st.builds(
        VoteResponse,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        granted=st.booleans(),
        pre_vote=st.booleans(),
    )


@st.composite
def append_entries(draw: st.DrawFn, max_entries: int = 8) -> AppendEntries:
    term = draw(uints())
    prev_index = draw(uints())
    prev_term = draw(st.one_of(st.integers(0, term), uints()))
    return AppendEntries(
        term=term,
        sender=draw(node_ids()),
        to=draw(node_ids()),
        prev_index=prev_index,
        prev_term=prev_term,
        entries=draw(entry_runs(prev_index, prev_term, term, max_size=max_entries)),
        commit=draw(uints()),
    )


def append_responses() -> st.SearchStrategy[AppendResponse]:
    return st.builds(
        AppendResponse,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        success=st.booleans(),
        index=uints(),
        hint_index=uints(),
        hint_term=uints(),
    )


def heartbeats() -> st.SearchStrategy[Heartbeat]:
    return st.builds(
        Heartbeat,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        commit=uints(),
        context=payloads(16),
    )


def heartbeat_responses() -> st.SearchStrategy[HeartbeatResponse]:
    return st.builds(
        HeartbeatResponse, term=uints(), sender=node_ids(), to=node_ids(), context=payloads(16)
    )


def install_snapshots() -> st.SearchStrategy[InstallSnapshot]:
    return st.builds(
        InstallSnapshot,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        metadata=snapshot_metadata(),
        offset=uints(),
        data=payloads(128),
        done=st.booleans(),
    )


def snapshot_responses() -> st.SearchStrategy[SnapshotResponse]:
    return st.builds(
        SnapshotResponse,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        snapshot_index=uints(),
        next_offset=uints(),
    )


def timeout_nows() -> st.SearchStrategy[TimeoutNow]:
    return st.builds(TimeoutNow, term=uints(), sender=node_ids(), to=node_ids())


def read_index_requests() -> st.SearchStrategy[ReadIndexRequest]:
    return st.builds(
        ReadIndexRequest, term=uints(), sender=node_ids(), to=node_ids(), context=payloads(16)
    )


def read_index_responses() -> st.SearchStrategy[ReadIndexResponse]:
    return st.builds(
        ReadIndexResponse,
        term=uints(),
        sender=node_ids(),
        to=node_ids(),
        index=uints(),
        context=payloads(16),
    )


MESSAGE_STRATEGIES: dict[type, st.SearchStrategy] = {
    VoteRequest: vote_requests(),
    VoteResponse: vote_responses(),
    AppendEntries: append_entries(),
    AppendResponse: append_responses(),
    Heartbeat: heartbeats(),
    HeartbeatResponse: heartbeat_responses(),
    InstallSnapshot: install_snapshots(),
    SnapshotResponse: snapshot_responses(),
    TimeoutNow: timeout_nows(),
    ReadIndexRequest: read_index_requests(),
    ReadIndexResponse: read_index_responses(),
}
"""One strategy per message class, keyed by class (covers `raft.types.MESSAGE_TYPES`)."""


def messages() -> st.SearchStrategy:
    """Any message of any kind."""
    return st.one_of(*MESSAGE_STRATEGIES.values())

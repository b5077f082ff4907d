"""Client sessions: a retried client write is applied once (state rule 6)."""

from coordinator import commands as c
from coordinator import state as state_module
from coordinator.codec import decode_command, encode_command
from coordinator.state import CoordinatorState


def put(seq: int, value: bytes, acked_below: int = 0, client: str = "cl-1") -> c.ClientRequest:
    return c.ClientRequest(client_id=client, seq=seq, acked_below=acked_below,
                           command=c.KvPut(key="k", value=value))


def test_a_retried_write_is_applied_once_and_answered_with_the_first_result():
    state = CoordinatorState()
    first = state.apply(put(1, b"a"))
    assert first == c.KvValue(key="k", value=b"a", version=1)
    assert state.apply(put(1, b"a")) == first
    assert state.kv_get("k").version == 1


def test_out_of_order_writes_of_one_client_both_apply():
    state = CoordinatorState()
    state.apply(put(2, b"b"))
    state.apply(put(1, b"a"))
    assert state.kv_get("k").version == 2


def test_a_write_below_the_acknowledged_floor_is_refused_not_applied():
    state = CoordinatorState()
    state.apply(put(1, b"a"))
    state.apply(put(2, b"b", acked_below=2))
    result = state.apply(put(1, b"a"))
    assert isinstance(result, c.Error) and result.code is c.ErrorCode.STALE_REQUEST
    assert state.kv_get("k").version == 2


def test_sessions_survive_a_snapshot():
    state = CoordinatorState()
    state.apply(put(1, b"a"))
    restored = CoordinatorState.restore(state.snapshot())
    assert restored == state
    assert restored.apply(put(1, b"a")) == c.KvValue(key="k", value=b"a", version=1)
    assert restored.kv_get("k").version == 1


def test_the_session_table_is_bounded(monkeypatch):
    monkeypatch.setattr(state_module, "MAX_CLIENT_SESSIONS", 2)
    state = CoordinatorState()
    for client in ("a", "b", "c"):
        state.apply(put(1, b"x", client=client))
    assert state.kv_get("k").version == 3
    # "a" was the least recently active and was forgotten: its retry applies again.
    state.apply(put(1, b"x", client="a"))
    assert state.kv_get("k").version == 4
    state.apply(put(1, b"x", client="c"))
    assert state.kv_get("k").version == 4


def test_client_requests_round_trip_through_the_codec():
    request = put(7, b"v", acked_below=3)
    assert decode_command(encode_command(request)) == request

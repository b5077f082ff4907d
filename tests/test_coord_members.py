"""Member addresses in the replicated state, and the client protocol's field checks."""

import struct

import cbor2
import pytest

from coordinator import api
from coordinator import commands as c
from coordinator.members import Member, decode_member, members_of
from coordinator.protocol import (
    PROTOCOL_VERSION,
    FrameDecoder,
    ProtocolError,
    encode_frame,
    tag_of,
)
from coordinator.state import CoordinatorState


def test_the_peers_syntax_parses_and_rejects_other_shapes():
    member = Member.parse("2=10.0.0.2:7101/10.0.0.2:7001")
    assert (member.node_id, member.peer_address, member.client_address) == \
        (2, "10.0.0.2:7101", "10.0.0.2:7001")
    for bad in ("2=10.0.0.2:7101", "x=a:1/b:2", "2=a/b:2", "0=a:1/b:2", "2=a:1/b:70000"):
        with pytest.raises(ValueError):
            Member.parse(bad)


def test_members_recorded_through_the_log_are_read_back_from_the_state():
    state = CoordinatorState()
    one = Member(node_id=1, peer_address="h:1", client_address="h:2")
    four = Member(node_id=4, peer_address="h:7", client_address="h:8")
    state.apply(one.put_command())
    state.apply(four.put_command())
    state.apply(c.KvPut(key="raftcoord/members/x", value=b"junk"))  # ignored, not fatal
    assert members_of(state) == {1: one, 4: four}
    assert members_of(CoordinatorState.restore(state.snapshot())) == {1: one, 4: four}
    assert decode_member("other/1", b"") is None


def test_listen_addresses_may_ask_for_any_port_member_addresses_may_not():
    assert api.parse_address("127.0.0.1:0", listen=True) == ("127.0.0.1", 0)
    assert api.parse_address("[::1]:7001") == ("::1", 7001)
    for bad in ("127.0.0.1:0", "nohost", ":7001", "h:port"):
        with pytest.raises(ValueError):
            api.parse_address(bad)


def test_requests_round_trip_and_invalid_fields_are_protocol_errors():
    request = api.KvCasRequest(client_id="c", seq=3, acked_below=2, key="k",
                               expected_version=1, value=b"v")
    frames = FrameDecoder().feed(encode_frame(9, request))
    assert [(f.request_id, f.message) for f in frames] == [(9, request)]
    body = cbor2.dumps({"key": ""})  # an empty key cannot exist
    header = struct.pack(">BQH", PROTOCOL_VERSION, 5, tag_of(api.KvGetRequest))
    with pytest.raises(ProtocolError) as error:
        FrameDecoder().feed(struct.pack(">I", len(header) + len(body)) + header + body)
    assert error.value.request_id == 5
    with pytest.raises(ValueError):
        api.KvPutRequest(client_id="c", seq=0, key="k", value=b"v")
    with pytest.raises(ValueError):
        api.ErrorReply(kind="no_such_kind")

"""TLS and authentication: in-process nodes on loopback with certificates from
`raftcoord certs init`'s code, raft transports with mutual TLS, and a `cluster up
--tls` cluster driven through the CLI."""

from __future__ import annotations

import logging
import os
import random
import shutil

import pytest
import trio

from cli.certs_cmd import create_dev_pki
from coordinator.agent import Worker
from coordinator.client import Client, ForbiddenError, UnauthorizedError
from coordinator.lease import LeaseTiming
from coordinator.members import Member
from coordinator.security import (ALLOWED, Role, SecurityConfigError, TlsFiles, TokenTable,
                                  client_context)
from coordinator.server import CoordinatorServer, ServerConfig
from raft.transport import TcpTransport
from raft import Heartbeat

from cluster_harness import LocalCluster, run_cli

TIMING = LeaseTiming(lease_duration=1.0, max_drift=0.05, safety_margin=0.2)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two independent development PKIs: ``main`` and ``other`` (another CA)."""
    root = tmp_path_factory.mktemp("pki")
    tokens = {name: create_dev_pki(str(root / name)) for name in ("main", "other")}
    return {"root": root, "tokens": tokens}


def files(pki, name: str = "main") -> TlsFiles:
    directory = pki["root"] / name
    return TlsFiles(str(directory / "node.pem"), str(directory / "node-key.pem"),
                    str(directory / "ca.pem"))


def ca(pki, name: str = "main") -> str:
    return str(pki["root"] / name / "ca.pem")


async def start_secure_node(nursery, tmp_path, pki, **overrides) -> CoordinatorServer:
    settings = dict(node_id=1, data_dir=str(tmp_path / "n1"), listen="127.0.0.1:0",
                    peer_listen="127.0.0.1:0", fsync=False, tick_interval=0.01,
                    lease_duration=1.0, max_drift=0.05, safety_margin=0.2,
                    members=(Member(node_id=1, peer_address="127.0.0.1:1",
                                    client_address="127.0.0.1:1"),),
                    tls=files(pki), tokens_file=str(pki["root"] / "main" / "tokens"))
    settings.update(overrides)
    server = CoordinatorServer(ServerConfig(**settings))
    await nursery.start(server.run)
    return server


def client(server: CoordinatorServer, pki, token=None, **options) -> Client:
    options.setdefault("ssl_context", client_context(ca(pki)))
    return Client([server.client_address], timeout=5, token=token, **options)


# -- clients and roles ------------------------------------------------------------------


async def test_an_admin_token_over_tls_may_do_everything(nursery, tmp_path, pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    with trio.fail_after(30):
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as admin:
            await admin.kv_put("k", b"v")
            assert (await admin.kv_get("k")).value == b"v"
            assert (await admin.status())["role"] == "leader"
            # Admin operations pass authorization (the node then refuses to remove
            # the only member itself, or to transfer to nobody: not a refusal of
            # the credential).
            with pytest.raises(Exception) as caught:
                await admin.transfer_leader(7)
            assert not isinstance(caught.value, UnauthorizedError)
    await server.stop()


async def test_a_client_without_a_token_or_with_a_wrong_one_is_unauthorized(nursery,
                                                                           tmp_path, pki,
                                                                           caplog):
    server = await start_secure_node(nursery, tmp_path, pki)
    with trio.fail_after(30):
        async with client(server, pki) as anonymous:
            with pytest.raises(UnauthorizedError, match="requires a token"):
                await anonymous.status()
            with pytest.raises(UnauthorizedError):
                await anonymous.kv_put("k", b"v")
        async with client(server, pki, "not-a-token-of-this-cluster") as wrong:
            with pytest.raises(UnauthorizedError, match="unknown token"):
                await wrong.status()
        # A valid token of another cluster is just as unknown.
        async with client(server, pki, pki["tokens"]["other"]["admin"]) as stranger:
            with pytest.raises(UnauthorizedError):
                await stranger.kv_get("k")
    assert server.stats.unauthorized >= 4
    assert "unknown token" in caplog.text
    await server.stop()


async def test_a_read_only_token_reads_but_may_not_change_the_cluster(nursery, tmp_path,
                                                                     pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    with trio.fail_after(30):
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as admin:
            await admin.kv_put("k", b"v")
        async with client(server, pki, pki["tokens"]["main"]["read-only"]) as reader:
            status = await reader.status()
            assert status["role"] == "leader"
            assert (await reader.members())["members"]
            assert (await reader.kv_get("k")).value == b"v"
            with pytest.raises(ForbiddenError, match="read-only"):
                await reader.remove_member(1)
            with pytest.raises(ForbiddenError):
                await reader.transfer_leader(0)
            with pytest.raises(ForbiddenError):
                await reader.kv_put("k", b"overwritten")
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as admin:
            assert (await admin.kv_get("k")).value == b"v"
            assert 1 in [m["id"] for m in (await admin.members())["members"]]
    await server.stop()


async def test_a_worker_token_heartbeats_but_may_not_remove_members(nursery, tmp_path, pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    tokens = pki["tokens"]["main"]
    with trio.fail_after(30):
        async with client(server, pki, tokens["admin"]) as admin:
            await admin.kv_put("warm", b"up")
            worker = Worker("w1", [server.client_address], timing=TIMING,
                            heartbeat_interval=0.1, rng=random.Random(1),
                            ssl_context=client_context(ca(pki)), token=tokens["worker"])
            async with worker:
                while not any(w["id"] == "w1" for w in await admin.list_workers()):
                    await trio.sleep(0.05)
                async with client(server, pki, tokens["worker"]) as as_worker:
                    with pytest.raises(ForbiddenError, match="worker"):
                        await as_worker.remove_member(1)
                    with pytest.raises(ForbiddenError):
                        await as_worker.drain("w1")
    await server.stop()


async def test_a_worker_without_credentials_is_never_registered(nursery, tmp_path, pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    with trio.fail_after(30):
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as admin:
            await admin.kv_put("warm", b"up")
            worker = Worker("intruder", [server.client_address], timing=TIMING,
                            heartbeat_interval=0.05, rng=random.Random(1),
                            ssl_context=client_context(ca(pki)))
            async with worker:
                await trio.sleep(0.5)  # ten heartbeats' worth
                assert await admin.list_workers() == []
    await server.stop()


async def test_a_client_certificate_grants_the_role_of_its_unit(nursery, tmp_path, pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    directory = pki["root"] / "main"
    reader_tls = client_context(ca(pki), str(directory / "read-only.pem"),
                                str(directory / "read-only-key.pem"))
    admin_tls = client_context(ca(pki), str(directory / "admin.pem"),
                               str(directory / "admin-key.pem"))
    with trio.fail_after(30):
        async with client(server, pki, ssl_context=admin_tls) as admin:
            await admin.kv_put("k", b"v")
        async with client(server, pki, ssl_context=reader_tls) as reader:
            assert (await reader.kv_get("k")).value == b"v"
            with pytest.raises(ForbiddenError):
                await reader.remove_member(1)
    await server.stop()


async def test_a_client_trusting_another_ca_cannot_connect(nursery, tmp_path, pki):
    server = await start_secure_node(nursery, tmp_path, pki)
    with trio.fail_after(30):
        async with client(server, pki, pki["tokens"]["main"]["admin"],
                          ssl_context=client_context(ca(pki, "other"))) as fooled:
            with pytest.raises(UnauthorizedError, match="TLS handshake"):
                await fooled.status()
    await server.stop()


async def test_sighup_reload_serves_new_connections_with_the_new_files(nursery, tmp_path,
                                                                       pki):
    live = tmp_path / "live"
    shutil.copytree(pki["root"] / "main", live)
    live_files = TlsFiles(str(live / "node.pem"), str(live / "node-key.pem"),
                          str(live / "ca.pem"))
    server = await start_secure_node(nursery, tmp_path, pki, tls=live_files,
                                     tokens_file=str(live / "tokens"))
    with trio.fail_after(30):
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as admin:
            await admin.kv_put("k", b"v")
        for name in ("node.pem", "node-key.pem", "ca.pem", "tokens"):
            shutil.copy(pki["root"] / "other" / name, live / name)
        server.reload_security()
        async with client(server, pki, pki["tokens"]["other"]["admin"],
                          ssl_context=client_context(ca(pki, "other"))) as renewed:
            assert (await renewed.kv_get("k")).value == b"v"
        async with client(server, pki, pki["tokens"]["main"]["admin"]) as old:
            with pytest.raises(UnauthorizedError):
                await old.status()
        # Broken files are refused and the node keeps the working ones.
        (live / "ca.pem").write_text("not a certificate")
        with pytest.raises(SecurityConfigError):
            server.reload_security()
        async with client(server, pki, pki["tokens"]["other"]["admin"],
                          ssl_context=client_context(ca(pki, "other"))) as renewed:
            assert (await renewed.kv_get("k")).value == b"v"
    await server.stop()


# -- the role table and the token file ------------------------------------------------------


def test_every_role_may_read_status_and_only_admin_may_change_membership():
    from coordinator import api
    from coordinator.protocol import Heartbeat
    for role in Role:
        assert api.StatusRequest in ALLOWED[role]
    for request in api.ADMIN_REQUESTS + api.WRITE_REQUESTS:
        assert [role for role in Role if request in ALLOWED[role]] == [Role.ADMIN]
    assert Heartbeat in ALLOWED[Role.WORKER] and Heartbeat not in ALLOWED[Role.READ_ONLY]


def test_the_token_file_is_checked_line_by_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# comment\n\nadmin ops abcdefghijklmnopqrstuvwxyz\n"
                    "read-only dash 0123456789abcdef0123\n")
    table = TokenTable.from_file(str(path))
    assert table.lookup("abcdefghijklmnopqrstuvwxyz").role is Role.ADMIN
    assert table.lookup("0123456789abcdef0123").name == "dash"
    assert table.lookup("abcdefghijklmnopqrstuvwxy") is None
    assert table.lookup("") is None
    for bad, reason in [("root ops abcdefghijklmnopqrstuvwxyz", "unknown role"),
                        ("admin ops short", "at least 16"),
                        ("admin abcdefghijklmnopqrstuvwxyz", "ROLE NAME TOKEN"),
                        ("admin a abcdefghijklmnopqrstuvwxyz\nworker b "
                         "abcdefghijklmnopqrstuvwxyz", "twice")]:
        path.write_text(bad + "\n")
        with pytest.raises(SecurityConfigError, match=reason):
            TokenTable.from_file(str(path))
    with pytest.raises(SecurityConfigError, match="cannot read"):
        TokenTable.from_file(str(tmp_path / "missing"))


# -- the raft peer transport -----------------------------------------------------------------


def _transport(node_id: int, tls: TlsFiles | None, received: list, peers=None,
               **options) -> TcpTransport:
    server = client = None
    if tls is not None:
        contexts = (tls.server_context(require_client_cert=True), tls.client_context())
        server, client = (lambda: contexts[0]), (lambda: contexts[1])
    return TcpTransport(node_id, ("127.0.0.1", 0), peers or {}, deliver=received.append,
                        server_ssl=server, client_ssl=client, handshake_timeout=2.0,
                        connect_timeout=2.0, **options)


def _heartbeat(sender: int, to: int) -> Heartbeat:
    return Heartbeat(term=1, sender=sender, to=to, commit=0)


async def _send_until(transport: TcpTransport, message: Heartbeat, done, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while not done():
            transport.send(message)
            await trio.sleep(0.05)


async def test_peers_with_certificates_of_the_same_ca_talk_over_mutual_tls(nursery, pki):
    received: list = []
    listener = _transport(1, files(pki), received)
    await nursery.start(listener.serve)
    dialer = _transport(2, files(pki), [], {1: listener.address})
    await nursery.start(dialer.serve)
    with trio.fail_after(10):
        await _send_until(dialer, _heartbeat(2, 1), lambda: received, 10)
    assert received and received[0].sender == 2
    assert listener.stats.rejected == 0
    await dialer.aclose()
    await listener.aclose()


@pytest.mark.parametrize("dialer_tls", ["other CA", "no certificate"])
async def test_a_peer_with_a_wrong_or_no_certificate_is_refused_and_logged(
        nursery, pki, caplog, dialer_tls):
    caplog.set_level(logging.WARNING, logger="raft.transport")
    received: list = []
    listener = _transport(1, files(pki), received)
    await nursery.start(listener.serve)
    if dialer_tls == "other CA":
        dialer = _transport(2, files(pki, "other"), [], {1: listener.address})
    else:  # trusts the right CA but presents no certificate
        import ssl
        context = ssl.create_default_context(cafile=ca(pki))
        dialer = TcpTransport(2, ("127.0.0.1", 0), {1: listener.address}, deliver=[].append,
                              server_ssl=lambda: context, client_ssl=lambda: context,
                              connect_timeout=2.0)
    await nursery.start(dialer.serve)
    with trio.fail_after(10):
        await _send_until(dialer, _heartbeat(2, 1), lambda: listener.stats.rejected >= 2, 5)
    assert listener.stats.rejected >= 2
    assert received == []
    assert "TLS handshake failed" in caplog.text
    await dialer.aclose()
    await listener.aclose()


async def test_a_plain_tcp_peer_is_refused_by_a_tls_listener(nursery, pki, caplog):
    received: list = []
    listener = _transport(1, files(pki), received)
    await nursery.start(listener.serve)
    dialer = _transport(2, None, [], {1: listener.address})
    await nursery.start(dialer.serve)
    with trio.fail_after(10):
        await _send_until(dialer, _heartbeat(2, 1), lambda: listener.stats.rejected >= 1, 5)
    assert listener.stats.rejected >= 1 and received == []
    await dialer.aclose()
    await listener.aclose()


def test_a_transport_needs_both_tls_contexts_or_neither():
    with pytest.raises(ValueError, match="both"):
        TcpTransport(1, ("127.0.0.1", 0), {}, deliver=[].append, server_ssl=lambda: None)


# -- the CLI end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_cluster_up_tls_serves_kv_through_the_cli_with_tokens(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster")
    cluster.args.append("--tls")
    with cluster:
        tls = cluster.info["tls"]
        with open(tls["admin_token_file"]) as handle:
            admin = handle.read().strip()
        secure = ["-a", cluster.addresses, "--ca", tls["ca"], "--timeout", "30"]
        put = run_cli("kv", "put", "greeting", "hello", *secure, "--token", admin)
        assert put.returncode == 0, put.stderr
        got = run_cli("kv", "get", "greeting", *secure, "--token", admin, "--json")
        assert got.returncode == 0, got.stderr
        assert '"hello"' in got.stdout
        refused = run_cli("kv", "get", "greeting", *secure)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr
        read_only = open(os.path.join(os.path.dirname(tls["ca"]), "read-only.token")).read()
        status = run_cli("status", *secure, "--token", read_only.strip(), "--json")
        assert status.returncode == 0, status.stderr
        removed = run_cli("members", "remove", "2", *secure, "--token", read_only.strip())
        assert removed.returncode != 0 and "forbidden" in removed.stderr
        # Plain TCP to a TLS port gets no answer.
        plain = run_cli("status", "-a", cluster.addresses, "--timeout", "2", "--token", admin)
        assert plain.returncode != 0

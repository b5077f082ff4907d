"""Who may talk to a node, and over what: TLS files, bearer tokens, roles.

Rules:

1. **TLS is per port.** `TlsFiles` holds a node's ``--cert``, ``--key`` and ``--ca``
   and builds its SSL contexts. The peer port requires a certificate signed by the
   CA from the other side, in both directions (mutual TLS): a peer with none or one
   from another CA fails the TLS handshake and is logged. The client port verifies
   a client certificate when one is presented (it is then a credential, rule 3) but
   does not require one (tokens are the other credential). `TlsFiles.reload` rereads
   the files (SIGHUP in `raftcoord serve`); new connections use the new contexts,
   open ones keep theirs.
2. **Every client connection has a role** (`Role`), granted by a bearer token
   (`AuthenticateRequest`, usually the first frame of a connection) or by the
   client certificate's organizational unit (OU ``admin``, ``worker`` or
   ``read-only``). A node without a token table grants every connection `Role.ADMIN`
   (an unsecured development node). With one, a connection without a credential
   has no role.
3. **One table decides** (`ALLOWED`): what each role may ask. A request without a
   role is answered ``unauthorized``; a request its role may not make, ``forbidden``.

=========  ======================================================================
role       may send
=========  ======================================================================
read-only  status, member list, KV get/list, group list/show, worker list
worker     what read-only may, plus the worker session (heartbeat, release,
           checkpoint, leave)
admin      everything: KV and group writes, drain/undrain, member add/promote/
           remove, leader transfer, and the worker session
=========  ======================================================================

Token file format (``--tokens FILE``): one credential a line, ``ROLE NAME TOKEN``
separated by whitespace; ``#`` starts a comment line. ``NAME`` identifies the holder
in logs (the token itself is never logged). Tokens are compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import ssl
from typing import Any, Awaitable, Callable, Optional

import attrs
import trio

from . import api
from .protocol import WORKER_MESSAGES, FrameDecoder, ProtocolError, encode_frame


class Role(enum.Enum):
    """What a credential may do (see the module docstring's table)."""

    ADMIN = "admin"
    WORKER = "worker"
    READ_ONLY = "read-only"


_READS = api.READ_REQUESTS + api.LOCAL_REQUESTS
ALLOWED: dict[Role, tuple[type, ...]] = {
    Role.READ_ONLY: _READS,
    Role.WORKER: _READS + WORKER_MESSAGES,
    Role.ADMIN: _READS + WORKER_MESSAGES + api.WRITE_REQUESTS + api.ADMIN_REQUESTS,
}
"""The one table of rule 3: the request types each role may send."""


def allows(role: Role, request: Any) -> bool:
    """Whether ``role`` may send ``request``."""
    return isinstance(request, ALLOWED[role])


class SecurityConfigError(ValueError):
    """A token file or TLS file that cannot be used (a local, operator error)."""


# -- tokens ----------------------------------------------------------------------------


@attrs.frozen
class Credential:
    """One token's holder: ``name`` (for logs) and ``role``."""

    name: str
    role: Role


class TokenTable:
    """Bearer tokens and their roles; lookups take the same time whatever the token.

    Only SHA-256 digests are kept, and `lookup` compares the presented token's digest
    with every entry (`hmac.compare_digest`, no early exit).
    """

    def __init__(self, entries: dict[str, Credential]) -> None:
        self._entries = [(hashlib.sha256(token.encode()).digest(), credential)
                         for token, credential in entries.items()]

    @classmethod
    def from_file(cls, path: str) -> "TokenTable":
        """Read a token file (format in the module docstring).

        Raises:
            SecurityConfigError: unreadable, a malformed line, an unknown role, a
                token shorter than 16 characters or given twice.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SecurityConfigError(f"cannot read the token file {path}: {exc}") from None
        entries: dict[str, Credential] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3:
                raise SecurityConfigError(f"{path}:{number}: expected ROLE NAME TOKEN")
            role_text, name, token = parts
            try:
                role = Role(role_text)
            except ValueError:
                raise SecurityConfigError(
                    f"{path}:{number}: unknown role {role_text!r} (admin, worker, "
                    "read-only)") from None
            if len(token) < 16:
                raise SecurityConfigError(f"{path}:{number}: a token needs at least 16 "
                                          "characters")
            if token in entries:
                raise SecurityConfigError(f"{path}:{number}: this token is given twice")
            entries[token] = Credential(name, role)
        return cls(entries)

    def lookup(self, token: str) -> Optional[Credential]:
        """The credential holding ``token`` (None: no such token)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, credential in self._entries:
            if hmac.compare_digest(known, digest):
                found = credential
        return found


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return secrets.token_urlsafe(32)


# -- TLS -------------------------------------------------------------------------------


@attrs.frozen
class TlsFiles:
    """A node's certificate, key and CA bundle paths (PEM).

    Attributes:
        cert / key: this node's certificate chain and private key.
        ca: the CA bundle that signs peers (and client certificates).
    """

    cert: str
    key: str
    ca: str

    def server_context(self, *, require_client_cert: bool) -> ssl.SSLContext:
        """A context for accepting connections (rule 1).

        Raises:
            SecurityConfigError: a file is missing or does not match.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._load(context)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """A context for dialing a peer: verifies it and presents this node's
        certificate (mutual TLS)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._load(context)
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
            context.load_verify_locations(self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise SecurityConfigError(f"cannot load TLS files (cert {self.cert}, key "
                                      f"{self.key}, ca {self.ca}): {exc}") from None


class NodeTls:
    """A node's current SSL contexts, rebuilt from `TlsFiles` by `reload`."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.reload()

    def reload(self) -> None:
        """Reread the files; on failure the previous contexts stay in use.

        Raises:
            SecurityConfigError: the new files cannot be used.
        """
        peer_server = self.files.server_context(require_client_cert=True)
        client_server = self.files.server_context(require_client_cert=False)
        peer_client = self.files.client_context()
        self.peer_server, self.client_server, self.peer_client = \
            peer_server, client_server, peer_client


def client_context(ca: Optional[str], cert: Optional[str] = None,
                   key: Optional[str] = None) -> ssl.SSLContext:
    """An SSL context for a client or worker: trusts ``ca`` (the system's CAs when
    None) and presents ``cert``/``key`` when given (an mTLS client credential).

    Raises:
        SecurityConfigError: a file is missing or invalid.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityConfigError(f"cannot load TLS files: {exc}") from None
    return context


def role_of_certificate(peercert: Optional[dict]) -> Optional[Role]:
    """The role a verified client certificate grants: its OU (None: no role)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "organizationalUnitName":
                try:
                    return Role(value)
                except ValueError:
                    return None
    return None


# -- the client side of a connection -----------------------------------------------------


class AuthenticationFailed(ConnectionError):
    """The node refused the token (``kind`` unauthorized) or the TLS handshake."""


Connect = Callable[[str], Awaitable[trio.abc.Stream]]
_AUTH_REQUEST_ID = 2**64 - 1  # never used by a client's numbered requests


def connector(ssl_context: Optional[ssl.SSLContext] = None,
              token: Optional[str] = None) -> Connect:
    """Opens a stream to ``host:port``: TCP, then TLS with ``ssl_context`` when given,
    then authenticates with ``token`` when given (rule 2).

    Raises (from the returned function):
        OSError: cannot connect. AuthenticationFailed: the TLS handshake or the
        token was refused.
    """
    async def connect(address: str) -> trio.abc.Stream:
        host, port = api.parse_address(address)
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        try:
            if ssl_context is not None:
                stream = trio.SSLStream(stream, ssl_context, server_hostname=host)
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    raise AuthenticationFailed(
                        f"TLS handshake with {address} failed: {exc.__cause__ or exc}") from None
            if token is not None:
                await _authenticate(stream, address, token)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream
    return connect


async def _authenticate(stream: trio.abc.Stream, address: str, token: str) -> None:
    await stream.send_all(encode_frame(_AUTH_REQUEST_ID, api.AuthenticateRequest(token=token)))
    decoder = FrameDecoder()
    while True:
        data = await stream.receive_some(1 << 16)
        if not data:
            raise ConnectionError(f"{address} closed the connection while authenticating")
        try:
            frames = decoder.feed(data)
        except ProtocolError as exc:
            raise ConnectionError(f"{address}: bad reply while authenticating: {exc}") from None
        for frame in frames:
            if frame.request_id != _AUTH_REQUEST_ID:
                continue
            if isinstance(frame.message, api.ErrorReply):
                raise AuthenticationFailed(f"{address}: {frame.message.kind}: "
                                           f"{frame.message.message}")
            return


def transport_socket(stream: trio.abc.Stream) -> Any:
    """The socket under ``stream`` (under TLS too), for a synchronous close."""
    while hasattr(stream, "transport_stream"):
        stream = stream.transport_stream
    return stream.socket


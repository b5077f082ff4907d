"""What the client-side commands share: the address option, running a `Client`
call, printing results, and turning user mistakes into one-line errors."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any, Awaitable, Callable

import click
import trio

from coordinator.client import (BadRequestError, Client, ClientError, ForbiddenError,
                                RefusedError, RequestTimeout, UnauthorizedError)
from coordinator.security import SecurityConfigError, client_context

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"


def addresses_option(function: Callable) -> Callable:
    """``--addresses/-a`` (env RAFTCOORD_ADDRESSES): client addresses of members."""
    return click.option(
        "--addresses", "-a", envvar="RAFTCOORD_ADDRESSES", default=DEFAULT_ADDRESSES,
        show_default=True, metavar="HOST:PORT[,HOST:PORT...]",
        help="Client addresses of one or more cluster members (env RAFTCOORD_ADDRESSES).",
    )(function)


def json_option(function: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON.")(function)


def timeout_option(function: Callable) -> Callable:
    return click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0,
                        show_default=True, help="Give up after this many seconds.")(function)


_SECURITY_KEY = "raftcoord.security"


def security_options(function: Callable) -> Callable:
    """``--ca``, ``--cert``, ``--key``, ``--token`` (env RAFTCOORD_CA, ...): how to reach
    a secured cluster. The values are kept for `client_credentials`."""
    @functools.wraps(function)
    def wrapper(*args: Any, tls_ca: Any, tls_cert: Any, tls_key: Any, auth_token: Any,
                **kwargs: Any) -> Any:
        click.get_current_context().meta[_SECURITY_KEY] = (tls_ca, tls_cert, tls_key,
                                                           auth_token)
        return function(*args, **kwargs)
    for option in reversed([
        click.option("--ca", "tls_ca", envvar="RAFTCOORD_CA", type=click.Path(dir_okay=False),
                     help="Speak TLS, trusting this CA bundle (env RAFTCOORD_CA)."),
        click.option("--cert", "tls_cert", envvar="RAFTCOORD_CLIENT_CERT", type=click.Path(dir_okay=False),
                     help="Client certificate for mutual TLS (env RAFTCOORD_CLIENT_CERT)."),
        click.option("--key", "tls_key", envvar="RAFTCOORD_CLIENT_KEY", type=click.Path(dir_okay=False),
                     help="Private key of --cert (env RAFTCOORD_CLIENT_KEY)."),
        click.option("--token", "auth_token", envvar="RAFTCOORD_TOKEN",
                     help="Bearer token (env RAFTCOORD_TOKEN)."),
    ]):
        wrapper = option(wrapper)
    return wrapper


def client_credentials() -> dict[str, Any]:
    """``ssl_context`` and ``token`` for a `Client` or `Worker` from the options of
    `security_options` (empty when the command has none)."""
    ca, cert, key, token = click.get_current_context().meta.get(
        _SECURITY_KEY, (None, None, None, None))
    if (cert or key) and not ca:
        raise click.UsageError("--cert/--key need --ca (client certificates go with TLS)")
    try:
        context = client_context(ca, cert, key) if ca else None
    except SecurityConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return {"ssl_context": context, "token": token or None}


def split_addresses(text: str) -> list[str]:
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise click.UsageError("give at least one member address with --addresses")
    return addresses


def run_with_client(addresses: str, timeout: float,
                    action: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run ``action(client)``; a client error becomes a one-line message, exit 1."""
    credentials = client_credentials()

    async def main() -> Any:
        async with Client(split_addresses(addresses), timeout=timeout,
                          **credentials) as client:
            return await action(client)
    try:
        return trio.run(main)
    except ValueError as exc:  # a malformed address
        raise click.UsageError(str(exc)) from None
    except RefusedError as exc:
        raise click.ClickException(f"refused: {exc}") from None
    except BadRequestError as exc:
        raise click.ClickException(f"bad request: {exc}") from None
    except ForbiddenError as exc:
        raise click.ClickException(f"forbidden: {exc}") from None
    except UnauthorizedError as exc:
        raise click.ClickException(f"unauthorized: {exc}") from None
    except RequestTimeout as exc:
        raise click.ClickException(f"no answer from the cluster: {exc}") from None
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None


def to_jsonable(value: Any) -> Any:
    """Bytes become text when they are UTF-8, else ``{"base64": ...}``."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=True))


def client_command(function: Callable) -> Callable:
    """Add --addresses, --timeout, --json and the security options to a command."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return addresses_option(timeout_option(json_option(security_options(wrapper))))

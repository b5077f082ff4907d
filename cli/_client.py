"""What the client-side commands share: the address option, running a `Client`
call, printing results, and turning user mistakes into one-line errors."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any, Awaitable, Callable

import click
import trio

from coordinator.client import BadRequestError, Client, ClientError, RefusedError, RequestTimeout

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


def split_addresses(text: str) -> list[str]:
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    if not addresses:
        raise click.UsageError("give at least one member address with --addresses")
    return addresses


def run_with_client(addresses: str, timeout: float,
                    action: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run ``action(client)``; a client error becomes a one-line message, exit 1."""
    async def main() -> Any:
        async with Client(split_addresses(addresses), timeout=timeout) as client:
            return await action(client)
    try:
        return trio.run(main)
    except ValueError as exc:  # a malformed address
        raise click.UsageError(str(exc)) from None
    except RefusedError as exc:
        raise click.ClickException(f"refused: {exc}") from None
    except BadRequestError as exc:
        raise click.ClickException(f"bad request: {exc}") from None
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
    """Add --addresses, --timeout and --json to a command."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)
    return addresses_option(timeout_option(json_option(wrapper)))

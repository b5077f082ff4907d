"""The `raftcoord` command group. Each sub-command lives in its own module."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import exit_codes


class _Group(click.Group):
    """The top-level group: Ctrl-C anywhere exits with the documented status 130.

    Click's default turns Ctrl-C into "Aborted!" and status 1, the status of a
    failed check; commands that have a partial result to show (a simulation
    sweep) catch the interrupt themselves and print it first.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(exit_codes.INTERRUPTED)


@click.group(cls=_Group, invoke_without_command=True, epilog=exit_codes.EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raftcoord")
@click.pass_context
def main(ctx: click.Context) -> None:
    """raftcoord: a Raft-based cluster coordinator.

    Run `raftcoord COMMAND --help` for the options of each command.
    """
    if ctx.invoked_subcommand is None:
        # A bare `raftcoord` asks what the tool can do: answer, successfully.
        click.echo(ctx.get_help())


def _register() -> None:
    # One module per command (group); each registers here with one line.
    from . import (cluster_cmd, inspect_cmd, kv_cmd, leader_cmd, members_cmd, partitions_cmd,
                   serve_cmd, simulate_cmd, status_cmd, worker_cmd, workers_cmd)

    main.add_command(inspect_cmd.inspect_cmd)
    main.add_command(simulate_cmd.simulate)
    main.add_command(serve_cmd.serve)
    main.add_command(cluster_cmd.cluster)
    main.add_command(status_cmd.status)
    main.add_command(members_cmd.members)
    main.add_command(leader_cmd.leader)
    main.add_command(partitions_cmd.partitions)
    main.add_command(workers_cmd.workers)
    main.add_command(kv_cmd.kv)
    main.add_command(worker_cmd.worker)


_register()

if __name__ == "__main__":  # `python -m cli.main ...` as well as the `raftcoord` script
    main()

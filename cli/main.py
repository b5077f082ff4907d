"""The `raftcoord` command group. Each sub-command lives in its own module."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raftcoord")
def main() -> None:
    """raftcoord: a Raft-based cluster coordinator.

    Run `raftcoord COMMAND --help` for the options of each command.
    """


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

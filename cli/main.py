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
    # Sub-commands register here; each module exposes one click command.
    from .inspect_cmd import inspect_cmd

    main.add_command(inspect_cmd)
    from .simulate_cmd import simulate
    main.add_command(simulate)
    from .serve_cmd import serve
    main.add_command(serve)
    from .status_cmd import status
    main.add_command(status)
    from .members_cmd import members
    main.add_command(members)
    from .leader_cmd import leader
    main.add_command(leader)
    from .partitions_cmd import partitions
    main.add_command(partitions)
    from .workers_cmd import workers
    main.add_command(workers)
    from .kv_cmd import kv
    main.add_command(kv)
    from .cluster_cmd import cluster
    main.add_command(cluster)
    from .worker_cmd import worker
    main.add_command(worker)


_register()

if __name__ == "__main__":  # `python -m cli.main ...` as well as the `raftcoord` script
    main()

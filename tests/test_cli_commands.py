"""Every `raftcoord` command has --help and --json (the CLI's promise)."""

import click
from click.testing import CliRunner

from cli.main import main


def leaves(group: click.Group, path: tuple = ()) -> list[tuple[tuple, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaves(command, path + (name,))
        else:
            found.append((path + (name,), command))
    return found


def test_every_command_offers_help_and_json():
    commands = leaves(main)
    assert len(commands) >= 20
    runner = CliRunner()
    for path, command in commands:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--json" in options, f"raftcoord {' '.join(path)} has no --json"


def test_a_user_mistake_is_one_line_and_a_non_zero_exit():
    result = CliRunner().invoke(main, ["partitions", "create", "g", "zero"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["kv", "get", "k", "-a", "no-port"])
    assert result.exit_code == 2 and "host:port" in result.output

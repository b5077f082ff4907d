"""`raftcoord serve` settings: command line over environment over --config file."""

import click
import pytest
from click.testing import CliRunner

from cli import serve_cmd
from cli.serve_cmd import resolve_settings, serve

TOML = """
id = 2
data_dir = "/data/n2"
listen = "127.0.0.1:7002"
peers = ["1=127.0.0.1:7101/127.0.0.1:7001", "2=127.0.0.1:7102/127.0.0.1:7002"]
lease = 5.0
"""


def test_the_config_file_fills_what_options_leave_unset(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text(TOML)
    config, join, level = resolve_settings(str(path), {"listen": "127.0.0.1:9002",
                                                       "node_id": None})
    assert config.node_id == 2 and config.data_dir == "/data/n2"
    assert config.listen == "127.0.0.1:9002"  # the option wins over the file
    assert config.lease_duration == 5.0 and config.fsync is True
    assert [m.node_id for m in config.members] == [1, 2]
    assert join == [] and level == "info"


def test_environment_variables_reach_the_node_configuration(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(serve_cmd.trio, "run", lambda fn, config, join, as_json:
                        seen.update(config=config, join=join))
    result = CliRunner().invoke(serve, [], env={
        "RAFTCOORD_ID": "3", "RAFTCOORD_DATA_DIR": str(tmp_path), "RAFTCOORD_JOIN":
        "127.0.0.1:7001", "RAFTCOORD_FSYNC": "false", "RAFTCOORD_LISTEN": "127.0.0.1:7003"})
    assert result.exit_code == 0, result.output
    assert seen["config"].node_id == 3 and seen["config"].fsync is False
    assert seen["config"].listen == "127.0.0.1:7003" and seen["join"] == ["127.0.0.1:7001"]


@pytest.mark.parametrize("options, message", [
    ({"node_id": 1}, "--data-dir"),
    ({"node_id": 1, "data_dir": "d"}, "--peers"),
    ({"node_id": 3, "data_dir": "d", "peers": "1=a:1/a:2"}, "does not name this node"),
    ({"node_id": 1, "data_dir": "d", "peers": "1=a:1"}, "ID=PEER_HOST:PORT/CLIENT_HOST:PORT"),
    ({"node_id": 1, "data_dir": "d", "peers": "1=a:1/a:2", "listen": "nowhere"}, "host:port"),
])
def test_invalid_settings_are_usage_errors(options, message):
    with pytest.raises(click.UsageError, match=message.replace("?", "\\?")):
        resolve_settings(None, options)


def test_an_unknown_setting_in_the_file_is_named(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('id = 1\ncolour = "blue"\n')
    with pytest.raises(click.UsageError, match="colour"):
        resolve_settings(str(path), {})


def test_advertised_addresses_are_what_other_members_are_told(tmp_path):
    config, _, _ = resolve_settings(None, {
        "node_id": 1, "data_dir": "d", "peers": "1=10.0.0.1:7101/10.0.0.1:7001",
        "listen": "0.0.0.0:7001", "advertise_client": "10.0.0.1:7001"})
    assert config.listen == "0.0.0.0:7001" and config.advertise_client == "10.0.0.1:7001"
    with pytest.raises(click.UsageError):
        resolve_settings(None, {"node_id": 1, "data_dir": "d", "peers": "1=a:1/a:2",
                                "advertise_peer": "a:0"})

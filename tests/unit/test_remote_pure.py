"""Pure parts of the Remote seam: rsync --stats parsing, relay argv handling, host-key decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.remote import RemoteTarget, Result
from atlas_sweeps.remote._relay_main import relay_command_line
from atlas_sweeps.remote.hostkeys import (
    append_known_host,
    changed_key_message,
    known_hosts_entry_name,
    sha256_fingerprint,
    unknown_key_message,
)
from atlas_sweeps.remote.relay import exit_status_for_rsync
from atlas_sweeps.remote.snapshot import parse_rsync_stats, shell_path

STATS_FIRST = """
Number of files: 2,052 (reg: 2,000, dir: 52)
Number of created files: 2,052 (reg: 2,000, dir: 52)
Number of deleted files: 0
Number of regular files transferred: 2,000
Total file size: 20,971,520 bytes
Total transferred file size: 20,971,520 bytes
Literal data: 20,971,520 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 21,066,023
Total bytes received: 39,977

sent 21,066,023 bytes  received 39,977 bytes  8,000.00 bytes/sec
total size is 20,971,520  speedup is 0.99
"""

STATS_ONE_CHANGE = """\
Number of files: 52 (reg: 50, dir: 2)
Number of created files: 0
Number of deleted files: 0
Number of regular files transferred: 1
Total file size: 141 bytes
Total transferred file size: 4 bytes
Total bytes sent: 1,023
Total bytes received: 77
"""

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAID5mxOabBUSGqO6afZ1thdP0vGVozJmAn9WIs4Pd8eTG"


def test_stats_of_a_first_sync_with_thousands_separators() -> None:
    stats = parse_rsync_stats(STATS_FIRST)
    assert (stats.files, stats.regular_files, stats.files_transferred) == (2052, 2000, 2000)
    assert stats.transferred_size == 20_971_520
    assert (stats.bytes_sent, stats.bytes_received) == (21_066_023, 39_977)


def test_stats_of_a_one_line_change() -> None:
    stats = parse_rsync_stats(STATS_ONE_CHANGE)
    assert stats.files_transferred == 1
    assert stats.transferred_size == 4
    assert stats.total_size == 141


def test_stats_of_output_without_a_stats_block_are_zero() -> None:
    assert parse_rsync_stats("sending incremental file list\n").files_transferred == 0


def test_relay_drops_user_option_and_host_and_keeps_rsync_escaping() -> None:
    argv = ["-l", "atlas", "cluster", "rsync", "--server", "-logDtpre.iLsfxCIvu", "--link-dest",
            "../snap\\ 1", ".", "snapshots/s\\ 2/"]
    assert relay_command_line(argv) == "rsync --server -logDtpre.iLsfxCIvu --link-dest ../snap\\ 1 . snapshots/s\\ 2/"


def test_relay_without_user_option() -> None:
    assert relay_command_line(["cluster", "rsync", "--server", "."]) == "rsync --server ."


def test_relay_rejects_argv_without_a_command() -> None:
    with pytest.raises(ValueError):
        relay_command_line(["-l", "atlas", "cluster"])


def test_missing_exit_status_is_reported_as_ssh_does() -> None:
    assert exit_status_for_rsync(-1) == 255
    assert exit_status_for_rsync(23) == 23


def test_known_hosts_names_use_brackets_off_port_22() -> None:
    assert known_hosts_entry_name("login.example.org", 22) == "login.example.org"
    assert known_hosts_entry_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_accepted_host_key_gets_a_line_of_its_own(tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    append_known_host(known, "[127.0.0.1]:2222", key_type="ssh-ed25519", key_base64=ED25519)
    assert known.read_text() == f"[127.0.0.1]:2222 ssh-ed25519 {ED25519}\n"
    assert (tmp_path / "ssh").stat().st_mode & 0o777 == 0o700
    known.write_text(f"other ssh-ed25519 {ED25519}")  # a hand-edited file without a final newline
    append_known_host(known, "login", key_type="ssh-ed25519", key_base64=ED25519)
    assert known.read_text().splitlines() == [f"other ssh-ed25519 {ED25519}", f"login ssh-ed25519 {ED25519}"]


def test_a_broken_known_hosts_line_is_a_one_line_error_before_connecting(tmp_path: Path) -> None:
    from atlas_sweeps.errors import ConfigError
    from atlas_sweeps.remote import open_remote

    known = tmp_path / "known_hosts"
    known.write_text("login ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n")  # truncated key
    with pytest.raises(ConfigError, match=f"^{known}: not a usable known_hosts file: login ssh-ed25519 AAAA.*line"):
        open_remote(RemoteTarget(host="127.0.0.1", port=1, known_hosts=str(known)))


def test_host_key_messages_say_how_to_verify_and_accept() -> None:
    fingerprint = sha256_fingerprint(ED25519)
    assert fingerprint == "SHA256:BR6OxnGj3MW84BuSz1DjKhsWIEFj7EZg71Y3M6jK5Jw"
    unknown = unknown_key_message("127.0.0.1", 2222, key_type="ssh-ed25519", key_base64=ED25519,
                                  known_hosts="/home/u/.ssh/known_hosts")
    assert fingerprint in unknown
    assert "ssh-keyscan -p 2222 127.0.0.1 | ssh-keygen -lf -" in unknown
    assert "--accept-new-host-key" in unknown
    changed = changed_key_message("127.0.0.1", 2222, key_type="ssh-ed25519", key_base64=ED25519,
                                  known_hosts="/home/u/.ssh/known_hosts")
    assert "man-in-the-middle" in changed
    assert "ssh-keygen -f /home/u/.ssh/known_hosts -R '[127.0.0.1]:2222'" in changed


def test_result_check_names_what_failed_with_the_last_stderr_lines() -> None:
    failed = Result(command="rsync", exit_code=11, stdout="", stderr="rsync: mkdir failed\nrsync error: code 11\n")
    with pytest.raises(RemoteError, match="syncing failed \\(exit 11\\): rsync: mkdir failed \\| rsync error"):
        failed.check(what="syncing")
    assert Result(command="true", exit_code=0, stdout="", stderr="").check(what="x").ok


def test_shell_path_keeps_home_and_quotes_the_rest() -> None:
    assert shell_path("~/atlas sweeps") == "\"$HOME\"/'atlas sweeps'"
    assert shell_path("/scratch/$USER") == "'/scratch/$USER'"


def test_targets_from_profiles_and_mappings() -> None:
    assert RemoteTarget.from_profile({"host": "local"}).is_local
    target = RemoteTarget.from_profile({"host": "login", "port": "2222", "key_file": "~/.ssh/k"})
    assert (target.host, target.port, target.identity_file, target.is_local) == ("login", 2222, "~/.ssh/k", False)


def test_ssh_config_supplies_hostname_user_port_keys_and_jump_hosts() -> None:
    import paramiko

    from atlas_sweeps.remote.ssh import connection_for, hops, identity_files

    config = paramiko.SSHConfig.from_text(
        "Host cluster\n  HostName login.example.org\n  User alice\n  Port 2200\n"
        "  IdentityFile /keys/id_cluster\n  ProxyJump bob@bastion:2222,gw\n")
    chain = hops(connection_for(RemoteTarget(host="cluster"), ssh_config=config))
    assert [(c.user, c.host, c.port) for c in chain][0] == ("alice", "login.example.org", 2200)
    assert [(c.host, c.port) for c in chain[1:]] == [("gw", 22), ("bastion", 2222)]  # jumped through in reverse
    assert chain[2].user == "bob"
    assert identity_files(chain[0], None) == ["/keys/id_cluster"]
    # The profile wins over ssh_config where it says something; its key is tried before ssh_config's.
    override = connection_for(RemoteTarget(host="cluster", user="carol", port=22), ssh_config=config)
    assert (override.user, override.port) == ("carol", 22)
    assert identity_files(override, "/p/key") == ["/p/key", "/keys/id_cluster"]
    assert identity_files(chain[1], None)[0].endswith("/.ssh/id_ed25519")  # no key named: the default ones
    unjumped = paramiko.SSHConfig.from_text("Host direct\n  ProxyJump none\nHost *\n  ProxyJump bastion\n")
    assert hops(connection_for(RemoteTarget(host="direct"), ssh_config=unjumped)) == \
        [connection_for(RemoteTarget(host="direct"), ssh_config=unjumped)]
    assert hops(connection_for(RemoteTarget(host="other"), ssh_config=unjumped))[1].host == "bastion"

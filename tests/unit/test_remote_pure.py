"""Pure parts of the Remote seam: rsync --stats parsing, relay argv handling, host-key decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.remote import RemoteTarget, Result
from atlas_sweeps.remote._relay_main import relay_command_line
from atlas_sweeps.remote.hostkeys import (
    HostKeyVerdict,
    changed_key_message,
    host_key_verdict,
    known_hosts_entry_name,
    known_hosts_line,
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
    assert known_hosts_line("127.0.0.1", 2222, key_type="ssh-ed25519", key_base64=ED25519) == \
        f"[127.0.0.1]:2222 ssh-ed25519 {ED25519}\n"


def test_host_key_verdicts() -> None:
    known = {"ssh-ed25519": ED25519}
    assert host_key_verdict(known, key_type="ssh-ed25519", key_base64=ED25519) is HostKeyVerdict.KNOWN
    assert host_key_verdict({}, key_type="ssh-ed25519", key_base64=ED25519) is HostKeyVerdict.UNKNOWN
    assert host_key_verdict({"ssh-rsa": "AAAA"}, key_type="ssh-ed25519", key_base64=ED25519) is HostKeyVerdict.UNKNOWN
    other = ED25519[:-4] + "AAAA"
    assert host_key_verdict(known, key_type="ssh-ed25519", key_base64=other) is HostKeyVerdict.CHANGED


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


def test_ssh_config_supplies_hostname_user_port_key_and_jump() -> None:
    import paramiko

    from atlas_sweeps.remote.ssh import parse_jump, resolve_endpoint

    config = paramiko.SSHConfig.from_text(
        "Host cluster\n  HostName login.example.org\n  User alice\n  Port 2200\n"
        "  IdentityFile /keys/id_cluster\n  IdentitiesOnly yes\n  ProxyJump bob@bastion:2222\n")
    endpoint = resolve_endpoint(RemoteTarget(host="cluster", known_hosts="/k/known_hosts"), config)
    assert (endpoint.hostname, endpoint.user, endpoint.port) == ("login.example.org", "alice", 2200)
    assert endpoint.identity_files == ("/keys/id_cluster",) and endpoint.identities_only
    assert endpoint.proxy_jump == "bob@bastion:2222" and endpoint.known_hosts == "/k/known_hosts"
    # The profile wins over ssh_config where it says something.
    override = resolve_endpoint(RemoteTarget(host="cluster", user="carol", port=22, identity_file="/p/key"), config)
    assert (override.user, override.port, override.identity_files[0]) == ("carol", 22, "/p/key")
    assert parse_jump("bob@bastion:2222") == RemoteTarget(host="bastion", port=2222, user="bob")
    assert parse_jump("bastion") == RemoteTarget(host="bastion")

"""Which failures ``status`` retries: connection problems may pass and are retried with backoff; a changed
host key, a refused login or a missing profile cannot, so ``status --wait`` stops at once with the error's
message and exit code instead of retrying forever."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_sweeps.errors import AuthError, HostKeyError, RemoteError, UsageError, is_retryable
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord
from atlas_sweeps.status.poller import Poller

ROOT = Path(__file__).resolve().parents[2]


def _db(path: Path, *, cluster: str) -> StateDB:
    """One launch of one array whose tasks were never seen (so a poll must ask the cluster)."""
    db = StateDB(path)
    now = time.time()
    db.add_launch(LaunchRecord(id="l1", created=now, config_path="c.yml", config_text="", cluster=cluster,
                               backend="local", nodes=1, remote_dir="/r", snapshot="", status="submitted",
                               total_runs=2, total_hours=1.0))
    db.add_sweep(SweepRecord(launch_id="l1", name="s", tags=("a",), runs=2, jobs=1, config={}, log_dir="/l",
                             sweep_id="l1/s"))
    db.add_job(JobRecord(launch_id="l1", sweep_name="s", chunk=0, job_id="12", job_name="atlas-l1-s",
                         array_spec="0-1%1", task_offset=0, task_count=2, output="/l/%A_%a.out",
                         error="/l/%A_%a.err", script="/s", submitted=now))
    return db


@pytest.mark.parametrize(("error", "retryable"), [
    (RemoteError("cannot connect to h:22: Connection refused"), True),
    (RemoteError("lost the connection to h"), True),
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (TimeoutError("timed out"), True),
    (HostKeyError("host key CHANGED"), False),
    (AuthError("h refused the login"), False),
    (UsageError("no cluster profile 'x'"), False),
])
def test_retryability_is_a_property_of_the_error(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def test_a_poll_keeps_transient_errors_to_retry_and_names_one_it_cannot_fix(tmp_path: Path) -> None:
    db = _db(tmp_path / "state.db", cluster="c")
    launches = [db.launch("l1")]

    def refused(_cluster: str) -> object:
        raise RemoteError("cannot connect to h:22: Connection refused")

    snap = Poller(db=db, remote_factory=refused).poll(launches)
    assert snap.error and "Connection refused" in snap.error and snap.stale and snap.fatal is None

    changed = HostKeyError("the host key of h has CHANGED")

    def changed_key(_cluster: str) -> object:
        raise changed

    snap = Poller(db=db, remote_factory=changed_key).poll(launches)
    assert snap.fatal is changed and snap.error and "CHANGED" in snap.error and snap.stale


def test_status_wait_stops_at_once_on_an_error_retrying_cannot_fix(tmp_path: Path) -> None:
    """Before: ``status --wait`` without --timeout retried a missing profile (or a changed key) forever."""
    state = tmp_path / "state"
    state.mkdir()
    _db(state / "state.db", cluster="gone").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), ATLAS_SWEEPS_STATE_DIR=str(state),
               HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT), NO_COLOR="1")
    for args in (["--wait"], ["--wait", "--json"], ["--once"]):
        done = subprocess.run([sys.executable, "-m", "atlas_sweeps", "status", *args, "--interval", "2"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert "error: " in done.stderr and "gone" in done.stderr and "retrying" not in done.stderr

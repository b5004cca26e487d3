"""``launch --resume`` after real faults: the SSH connection is cut by killing the session's own sshd process
on the sandbox (at each remote call of a launch in turn, and just after sbatch accepted an array but before
its id came back), the CLI is SIGKILLed during the sync, squeue and sacct fail, two resumes race, the login
node's disk fills up. After each, exactly one array per sweep chunk exists on the cluster, the database
knows each, and every run of the plan runs once, in the launch's snapshot.

The faults come from a hook in the sandbox user's ``~/.bashrc`` (sourced for every command run through sshd)
that acts only while this module's trigger file exists; it is removed in a ``finally``. Run this module
serialized with the other integration tests (``flock /tmp/atlas-integration.lock ...``)."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import CLI, Workspace, arrays_on_cluster, make_workspace, wait_for_tasks

HOME = Path("/home/atlas")
PROGRAM = ('import json, os, sys\n'
           'print("ATLAS_EXAMPLE_RECORD " + json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}), flush=True)\n')
SWEEPS = ("program: prog.py\nmethod: grid\nparameters:\n  seed:\n    value: 1\n  subtests:\n"
          "    a:\n      hp:\n        values: [1, 2]\n    b:\n      hp:\n        values: [3, 4]\n")
# A new launch makes these remote calls, in this order, each one SSH channel (one .bashrc each): the preflight
# also prepares the code snapshot, and the submit call freezes it (marks it complete) before its first sbatch.
PREFLIGHT, RSYNC, SUBMIT = 1, 2, 3


@dataclass
class Faults:
    """The hook's control directory on the login node: a call counter, per-call actions, command wrappers."""

    dir: Path

    @property
    def calls(self) -> int:
        path = self.dir / "calls"
        for _ in range(50):  # the hook rewrites the file in place: an empty read is a write under way
            text = path.read_text().strip() if path.exists() else "0"
            if text:
                return int(text)
            time.sleep(0.01)
        raise AssertionError(f"{path} stayed empty")

    def at(self, call: int, action: str) -> None:
        """Run ``action`` (bash) at the start of remote call number ``call`` (counted from the hook's install)."""
        self._write(f"at/{call}", "#!/bin/bash\n" + action + "\n", mode=0o755)

    def cut(self, call: int) -> None:
        """Kill the SSH connection at the start of remote call ``call``."""
        self.at(call, f"{self.dir}/cut")

    def cut_after_sbatch(self, number: int) -> None:
        """Kill the connection after the ``number``-th sbatch (counted from now) accepted its array, before
        its id comes back."""
        (self.dir / "sbatches").unlink(missing_ok=True)
        self._write("sbatch_cut", str(number))

    def fail(self, command: str, message: str | None) -> None:
        """Make ``squeue``/``sacct`` print ``message`` on stderr and exit 1 (None: work again)."""
        if message is None:
            (self.dir / f"{command}_fails").unlink(missing_ok=True)
        else:
            self._write(f"{command}_fails", message)

    def clear(self) -> None:
        for path in (self.dir / "at").iterdir():
            path.unlink()
        for name in ("sbatch_cut", "squeue_fails", "sacct_fails"):
            (self.dir / name).unlink(missing_ok=True)

    def _write(self, name: str, text: str, *, mode: int = 0o644) -> None:
        path = self.dir / name
        path.write_text(text)
        path.chmod(mode)
        shutil.chown(path, "atlas", "atlas")


def _install(token: str) -> Faults:
    faults = Faults(HOME / f".atlas-fault-{token}.d")
    (faults.dir / "at").mkdir(parents=True)
    (faults.dir / "bin").mkdir()
    d = faults.dir
    faults._write("cut", "#!/bin/bash\n# kill this session's own sshd (the one running as atlas): the connection dies\n"
                  "p=$$\nwhile [ \"$p\" -gt 1 ]; do\n"
                  "  if [ \"$(cat /proc/$p/comm)\" = sshd ] && [ \"$(stat -c %U /proc/$p)\" = atlas ]; then kill -9 $p; exit; fi\n"
                  "  p=$(awk '/^PPid:/ {print $2}' /proc/$p/status)\ndone\n", mode=0o755)
    faults._write("bin/sbatch", "#!/bin/bash\n"
                  "case \" $* \" in *\" --test-only \"*) exec /usr/bin/sbatch \"$@\" ;; esac\n"
                  f"n=$(( $(cat {d}/sbatches 2>/dev/null || echo 0) + 1 )); echo $n > {d}/sbatches\n"
                  "out=$(/usr/bin/sbatch \"$@\"); rc=$?\n"
                  f"if [ \"$n\" = \"$(cat {d}/sbatch_cut 2>/dev/null)\" ]; then {d}/cut; sleep 10; fi\n"
                  "printf '%s\\n' \"$out\"; exit $rc\n", mode=0o755)
    for command in ("squeue", "sacct"):
        faults._write(f"bin/{command}", "#!/bin/bash\n"
                      f"if [ -e {d}/{command}_fails ]; then cat {d}/{command}_fails >&2; exit 1; fi\n"
                      f"exec /usr/bin/{command} \"$@\"\n", mode=0o755)
    # only atlas-sweeps' own calls (scripts on ``bash -s``, rsync's server) count, not this test's ssh commands
    hook = (f"__af={d}\n"
            'case "$BASH_EXECUTION_STRING" in "bash -s"|"rsync --server"*)\n'
            "  __an=$(( $(cat $__af/calls 2>/dev/null || echo 0) + 1 )); echo $__an > $__af/calls\n"
            "  export PATH=$__af/bin:$PATH\n"
            "  if [ -x $__af/at/$__an ]; then $__af/at/$__an; fi ;;\n"
            "esac\n")
    trigger = HOME / f".atlas-fault-{token}"
    trigger.write_text(hook)
    shutil.chown(faults.dir, "atlas", "atlas")
    shutil.chown(faults.dir / "at", "atlas", "atlas")
    subprocess.run(["sed", "-i", f"1i [ -e {trigger} ] \\&\\& . {trigger} # atlas-fault-{token}",
                    str(HOME / ".bashrc")], check=True)
    return faults


@pytest.fixture
def faults(sandbox: SandboxCluster) -> Iterator[Faults]:
    """The fault hook, installed for one test and removed afterwards, whatever happens."""
    token = secrets.token_hex(6)
    try:
        yield _install(token)
    finally:
        subprocess.run(["sed", "-i", f"/# atlas-fault-{token}$/d", str(HOME / ".bashrc")], check=True)
        (HOME / f".atlas-fault-{token}").unlink(missing_ok=True)
        shutil.rmtree(HOME / f".atlas-fault-{token}.d", ignore_errors=True)


@pytest.fixture
def ws(sandbox: SandboxCluster, tmp_path: Path) -> Iterator[Workspace]:
    """A fresh project and state directory (so no earlier snapshot is a --link-dest basis); its launches'
    leftover jobs are cancelled at the end."""
    workspace = make_workspace(tmp_path, sandbox)
    (workspace.project / "prog.py").write_text(PROGRAM)
    (workspace.project / "two.yml").write_text(SWEEPS)
    yield workspace
    _cancel_leftovers(workspace)


def _cancel_leftovers(ws: Workspace) -> None:
    """Cancel whatever is left of the workspace's launches (every job whose name has a launch's prefix)."""
    for launch_id in _launch_ids(ws):
        subprocess.run(ws.sandbox.ssh_argv(
            f"squeue --me -h -o '%A %j' | awk '$2 ~ /^atlas-{launch_id}-/ {{print $1}}' | xargs -r scancel"),
            capture_output=True, timeout=60)


def _db(ws: Workspace) -> sqlite3.Connection:
    return sqlite3.connect(Path(ws.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db")


def _launch_ids(ws: Workspace) -> list[str]:
    if not (Path(ws.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db").exists():
        return []
    return [row[0] for row in _db(ws).execute("SELECT id FROM launches")]


def _names(ws: Workspace, launch_id: str) -> list[str]:
    return [f"atlas-{launch_id}-two_a", f"atlas-{launch_id}-two_b"]


def _status(ws: Workspace, launch_id: str) -> str:
    return _db(ws).execute("SELECT status FROM launches WHERE id = ?", (launch_id,)).fetchone()[0]


def _launch(ws: Workspace) -> subprocess.CompletedProcess[str]:
    return ws.cli("launch", "two", "--cluster", "sandbox", "--nodes", "2", check=False)


def _resume(ws: Workspace, launch_id: str, *more: str) -> subprocess.CompletedProcess[str]:
    return ws.cli("launch", "--resume", launch_id, *more, check=False)


def _cut_launch_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    match = re.search(r"launch --resume (\w+)", result.stderr)
    assert match, result.stderr
    return match.group(1)


def assert_every_run_ran_once(ws: Workspace, launch_id: str, *, chunks: tuple[str, ...] = ("",)) -> None:
    """One array per chunk on the cluster, each recorded; every planned run ran exactly once, in the snapshot."""
    recorded = {name: job_id for name, job_id in _db(ws).execute(
        "SELECT job_name, job_id FROM jobs WHERE launch_id = ?", (launch_id,))}
    assert sorted(recorded) == [name + chunk for name in _names(ws, launch_id) for chunk in chunks]
    assert arrays_on_cluster(ws, launch_id) == recorded  # fails on two arrays of one name
    states = wait_for_tasks(ws, sorted(recorded.values()), 4, timeout=90)
    assert set(states.values()) == {"COMPLETED"}, states
    (root, snapshot), = _db(ws).execute("SELECT remote_dir, snapshot FROM launches WHERE id = ?", (launch_id,))
    # every log of the launch, including any array the database does not know
    out = ws.ssh(f"cat {root}/logs/{launch_id}/*/*.out")
    records = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines()
               if line.startswith("ATLAS_EXAMPLE_RECORD ")]
    assert Counter(r["argv"][-2] for r in records) == Counter(f"--hp={i}" for i in (1, 2, 3, 4)), records
    assert {r["cwd"] for r in records} == {snapshot}
    assert _status(ws, launch_id) == "submitted"


@pytest.mark.parametrize("call", [PREFLIGHT, RSYNC, SUBMIT])
def test_connection_cut_at_each_remote_call_then_resume(ws: Workspace, faults: Faults, call: int) -> None:
    faults.cut(call)
    cut = _launch(ws)
    assert cut.returncode == 1, cut.stderr
    assert faults.calls == call
    if call == PREFLIGHT:  # nothing was created anywhere: no launch to resume
        assert "lost during the preflight" in cut.stderr
        assert _launch_ids(ws) == []
        return
    launch_id = _cut_launch_id(cut)
    assert _status(ws, launch_id) == "partial"
    if call == SUBMIT:
        assert "connection to cluster 'sandbox' was lost while submitting" in cut.stderr, cut.stderr
    faults.clear()
    resumed = _resume(ws, launch_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_run_ran_once(ws, launch_id)


def test_answer_lost_after_sbatch_accepted_an_array_untrusted_lookups_stop_the_resume(
        ws: Workspace, faults: Faults) -> None:
    faults.cut_after_sbatch(1)
    cut = _launch(ws)
    launch_id = _cut_launch_id(cut)
    [(name, job_id)] = arrays_on_cluster(ws, launch_id).items()  # sbatch did accept it
    faults.clear()
    faults.fail("squeue", "slurm_load_jobs error: Socket timed out on send/recv operation")
    squeue_down = _resume(ws, launch_id)
    assert arrays_on_cluster(ws, launch_id) == {name: job_id}  # nothing was submitted on an untrusted answer
    faults.fail("squeue", None)
    faults.fail("sacct", "sacct: error: Slurm accounting storage is disabled")
    no_accounting = _resume(ws, launch_id)  # the sandbox's MinJobAge (10 s) is too short to trust squeue alone
    assert arrays_on_cluster(ws, launch_id) == {name: job_id}
    faults.fail("sacct", None)
    resumed = _resume(ws, launch_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_run_ran_once(ws, launch_id)
    assert "connection to cluster 'sandbox' was lost while submitting" in cut.stderr
    assert "0 of 2 job arrays were submitted and recorded" in cut.stderr
    assert squeue_down.returncode == 1, squeue_down.stderr
    assert "squeue failed: slurm_load_jobs error: Socket timed out" in squeue_down.stderr
    assert no_accounting.returncode == 1, no_accounting.stderr
    assert "accounting storage is disabled" in no_accounting.stderr
    assert "--force-resubmit-unknown" in no_accounting.stderr


@pytest.mark.parametrize("number", [1, 2])
def test_answer_lost_after_sbatch_accepted_an_array_then_resume(ws: Workspace, faults: Faults, number: int) -> None:
    faults.cut_after_sbatch(number)
    cut = _launch(ws)
    launch_id = _cut_launch_id(cut)
    assert len(arrays_on_cluster(ws, launch_id)) == number
    faults.clear()
    resumed = _resume(ws, launch_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_run_ran_once(ws, launch_id)
    assert f"{number - 1} of 2 job arrays were submitted and recorded" in cut.stderr
    assert "connection to cluster 'sandbox' was lost while submitting" in cut.stderr


def test_two_resumes_at_once_one_is_refused_naming_the_others_pid(ws: Workspace, faults: Faults) -> None:
    faults.cut_after_sbatch(1)  # the second sweep's array is still to be submitted
    launch_id = _cut_launch_id(_launch(ws))
    faults.clear()
    submit_call = faults.calls + 2  # the first resume's preflight, then its submit call, which is slow
    faults.at(submit_call, "sleep 4")
    first = subprocess.Popen([*CLI, "launch", "--resume", launch_id], cwd=ws.project, env=ws.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while faults.calls < submit_call and time.monotonic() < deadline:  # it has looked and is submitting
        time.sleep(0.1)
    second = _resume(ws, launch_id)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert_every_run_ran_once(ws, launch_id)
    assert second.returncode == 1
    assert f"launch {launch_id} is in use by another atlas-sweeps process (pid {first.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


def test_cli_killed_during_the_sync_then_a_failed_resume_then_a_resume_syncs_again(
        ws: Workspace, faults: Faults) -> None:
    faults.at(RSYNC, "sleep 6")
    launch = subprocess.Popen([*CLI, "launch", "two", "--cluster", "sandbox", "--nodes", "2"], cwd=ws.project,
                              env=ws.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while faults.calls < RSYNC and time.monotonic() < deadline:
        time.sleep(0.1)
    launch.send_signal(signal.SIGKILL)  # no Python cleanup: the terminal was closed
    launch.wait()
    [launch_id] = _launch_ids(ws)
    killed_status = _status(ws, launch_id)
    faults.cut(faults.calls + 1)  # the network is still down for the first resume
    failed = _resume(ws, launch_id)
    assert failed.returncode != 0, failed.stderr
    assert _status(ws, launch_id) == "partial"
    faults.clear()
    resumed = _resume(ws, launch_id)  # must sync: the snapshot was never completed
    assert resumed.returncode == 0, resumed.stderr
    assert_every_run_ran_once(ws, launch_id)
    assert killed_status == "syncing" and failed.returncode == 1, failed.stderr
    assert "lost during the preflight" in failed.stderr


def test_resume_keeps_the_recorded_chunking_when_an_answer_for_a_chunk_is_lost(ws: Workspace, faults: Faults) -> None:
    faults.cut(SUBMIT)  # before the freeze: the resume syncs the snapshot again
    launch_id = _cut_launch_id(_launch(ws))
    with _db(ws) as db:  # as if the cluster's MaxArraySize were 2 when the launch began: one task per array
        db.execute("UPDATE launches SET max_array_size = 2 WHERE id = ?", (launch_id,))
    faults.clear()
    faults.cut_after_sbatch(3)  # two_b's first chunk is accepted, its answer lost
    cut = _resume(ws, launch_id)
    assert "2 of 4 job arrays were submitted and recorded" in cut.stderr, cut.stderr
    faults.clear()
    resumed = _resume(ws, launch_id)
    assert resumed.returncode == 0, resumed.stderr
    assert_every_run_ran_once(ws, launch_id, chunks=("-c0", "-c1"))


def test_full_disk_on_the_login_node_names_the_cause(ws: Workspace, faults: Faults, tmp_path: Path) -> None:
    mount = Path(f"/tmp/atlas-full-{secrets.token_hex(4)}")
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        shutil.chown(mount, "atlas", "atlas")
        base = ws.sandbox.profiles["sandbox"].read_text()
        ws.add_profile("small", re.sub(r'remote_dir = ".*"', f'remote_dir = "{mount}/sweeps"', base))
        faults.at(SUBMIT, f"dd if=/dev/zero of={mount}/fill bs=64k 2>/dev/null; true")
        full = ws.cli("launch", "two", "--cluster", "small", "--nodes", "2", check=False)
        launch_id = _cut_launch_id(full)
        assert "No space left on device" in full.stderr and "could not unpack the job files" in full.stderr
        assert "exit code" not in full.stderr
        (mount / "fill").unlink()
        resumed = _resume(ws, launch_id)
        assert resumed.returncode == 0, resumed.stderr
        assert_every_run_ran_once(ws, launch_id)
    finally:
        _cancel_leftovers(ws)
        time.sleep(1)
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()

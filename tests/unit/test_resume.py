"""The pieces that keep ``launch --resume`` exact: which arrays the cluster already has (by the chunking
recorded at submit time), when the cluster's answer cannot be trusted, the per-launch lock, and the
database's refusal of a second array for one chunk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.backends.local import LocalBackend
from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.config.templates import load_template
from atlas_sweeps.errors import RemoteError, StateError
from atlas_sweeps.launch.jobs import prepare_sweep
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.plan import build_plan
from atlas_sweeps.launch.resume import ClusterJobs, adopt_submitted
from atlas_sweeps.state.lock import launch_lock
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB

NOW = 1_000_000.0


def _expected(tmp_path: Path, *, runs: int, max_array_size: int) -> dict[tuple[str, int], str]:
    """(sweep, chunk) -> job name of a one-sweep, ``runs``-run launch ``l1``, as the launcher submits it."""
    (tmp_path / "big.yml").write_text("program: main.py\nmethod: grid\nparameters:\n"
                                      f"  x:\n    values: {list(range(runs))}\n")
    [sweep] = build_plan(load_composite(tmp_path / "big.yml"), backend="local", expand=True, nodes=4, test_time=1,
                         gpus_per_job=1).sweeps
    backend = LocalBackend()
    prepared = prepare_sweep(sweep, backend.create(sweep, launch_id="l1", entity=None, project="p"),
                             backend=backend, profile=Profile(name="t"), template=load_template(None),
                             layout=LaunchLayout(root="/r", launch_id="l1"), launch_id="l1", project="p",
                             entity=None, max_array_size=max_array_size)
    return {(sweep.name, sub.chunk.index): sub.job_name for sub in prepared.submissions}


def _adopt(expected: dict, known: dict, cluster: ClusterJobs, **kw: object) -> dict:
    return adopt_submitted(launch_id="l1", expected=expected, known=known, cluster=cluster,
                           submit_started=kw.pop("submit_started", NOW - 10), now=NOW, **kw)  # type: ignore[arg-type]


def test_a_lost_answer_for_a_small_maxarraysize_chunk_is_adopted_not_submitted_again(tmp_path: Path) -> None:
    expected = _expected(tmp_path, runs=300, max_array_size=51)
    assert len(expected) == 6  # 50 tasks per array
    sweep = next(iter(expected))[0]
    known = {(sweep, i): str(100 + i) for i in range(3)}
    cluster = ClusterJobs(answered=True, squeue=((expected[(sweep, 3)], "103"),),
                          sacct=tuple((expected[(sweep, i)], str(100 + i)) for i in range(3)))
    assert _adopt(expected, known, cluster) == {(sweep, 3): "103"}


def test_nothing_to_look_up_when_no_submission_was_ever_attempted_or_all_are_known() -> None:
    expected = {("s", 0): "atlas-l1-s"}
    failed = ClusterJobs(answered=False)
    assert _adopt(expected, {}, failed, submit_started=None) == {}
    assert _adopt(expected, {("s", 0): "5"}, failed) == {}


@pytest.mark.parametrize("cluster, message", [
    (ClusterJobs(answered=False), "did not answer"),
    (ClusterJobs(answered=True, squeue_error="slurm_load_jobs error: Socket timed out on send/recv operation"),
     "squeue failed: slurm_load_jobs error: Socket timed out"),
])
def test_an_answer_that_cannot_be_trusted_stops_the_resume(cluster: ClusterJobs, message: str) -> None:
    with pytest.raises(RemoteError, match=message) as caught:
        _adopt({("s", 0): "atlas-l1-s"}, {}, cluster)
    assert "nothing was submitted" in str(caught.value)


def test_without_accounting_squeue_is_trusted_only_while_finished_arrays_are_still_in_it() -> None:
    cluster = ClusterJobs(answered=True, sacct_error="sacct: error: Slurm accounting storage is disabled",
                          min_job_age=300)
    expected = {("s", 0): "atlas-l1-s"}
    assert _adopt(expected, {}, cluster, submit_started=NOW - 100) == {}
    with pytest.raises(RemoteError, match="accounting storage is disabled.*MinJobAge") as caught:
        _adopt(expected, {}, cluster, submit_started=NOW - 290)
    assert "--resume l1 --force-resubmit-unknown" in str(caught.value)
    assert _adopt(expected, {}, cluster, submit_started=NOW - 3600, force_unknown=True) == {}


def test_arrays_the_plan_or_the_database_does_not_account_for_are_refused() -> None:
    expected = {("s", 0): "atlas-l1-s-c0", ("s", 1): "atlas-l1-s-c1"}
    with pytest.raises(RemoteError, match="does not name: atlas-l1-s .7."):
        _adopt(expected, {}, ClusterJobs(answered=True, squeue=(("atlas-l1-s", "7"),)))
    with pytest.raises(RemoteError, match="2 job arrays for s chunk 0 .5, 6."):
        _adopt(expected, {("s", 0): "5"}, ClusterJobs(answered=True, squeue=(("atlas-l1-s-c0", "6"),)))
    with pytest.raises(RemoteError, match="2 job arrays for s chunk 1 .8, 9."):
        _adopt(expected, {}, ClusterJobs(answered=True, squeue=(("atlas-l1-s-c1", "8"),),
                                         sacct=(("atlas-l1-s-c1", "9"),)))


def test_one_process_per_launch_and_the_other_names_the_holders_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from atlas_sweeps.state.lock import launch_lock\n"
         f"with launch_lock(Path({str(tmp_path)!r}), 'l1'):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateError, match=f"launch l1 is in use by another atlas-sweeps process .pid {holder.pid}."):
            with launch_lock(tmp_path, "l1"):
                pass
        with launch_lock(tmp_path, "l2"):  # other launches are free
            pass
    finally:
        holder.kill()  # a killed holder leaves no lock behind
        holder.wait()
    with launch_lock(tmp_path, "l1"):
        assert (tmp_path / "l1.lock").read_text().strip().isdigit()
    assert not (tmp_path / "l1.lock").exists()


def test_the_database_refuses_a_second_array_for_one_chunk(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.add_launch(LaunchRecord(id="l1", created=0, config_path="c", config_text="", cluster="x", backend="local",
                               nodes=1, remote_dir="~", snapshot="", status="submitting", total_runs=1,
                               total_hours=1, max_array_size=51, submit_started=5.0))
    job = JobRecord(launch_id="l1", sweep_name="s", chunk=0, job_id="5", job_name="atlas-l1-s", array_spec="0-0",
                    task_offset=0, task_count=1, output="o", error="e", script="j", submitted=1)
    db.add_job(job)
    with pytest.raises(StateError, match="already has job 5 for s chunk 0; job 6 is a second array"):
        db.add_job(JobRecord(**{**job.__dict__, "job_id": "6"}))
    assert [j.job_id for j in db.jobs("l1")] == ["5"]
    record = db.launch("l1")
    assert record is not None and (record.max_array_size, record.submit_started) == (51, 5.0)


def test_a_retried_sweep_does_not_stop_the_resume_of_a_sweep_never_submitted() -> None:
    # Sweep a was submitted (array 5) and retried (array 9, job name ...-r1); sweep b's submission was cut short
    # but reached the cluster (array 7). The retry array is the database's own: only b's array is adopted.
    expected = {("a", 0): "atlas-l1-a", ("b", 0): "atlas-l1-b"}
    cluster = ClusterJobs(answered=True, squeue=(("atlas-l1-a-r1", "9"), ("atlas-l1-b", "7")),
                          sacct=(("atlas-l1-a", "5"), ("atlas-l1-a-r1", "9"), ("atlas-l1-b", "7")))
    assert _adopt(expected, {("a", 0): "5"}, cluster, retried=frozenset({"atlas-l1-a-r1"})) == {("b", 0): "7"}
    with pytest.raises(RemoteError, match="does not name: atlas-l1-a-r1"):
        _adopt(expected, {("a", 0): "5"}, cluster)

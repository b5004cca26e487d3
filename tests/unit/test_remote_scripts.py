"""The preflight and submit scripts, run by a real bash with stand-in Slurm commands on PATH (pure unit
tests of the scripts and their parsers; the real Slurm path is covered by the integration tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from atlas_sweeps.backends.local import LocalBackend
from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.config.templates import load_template
from atlas_sweeps.launch.jobs import prepare_sweep
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.plan import build_plan
from atlas_sweeps.launch.preflight import parse_preflight, preflight_script
from atlas_sweeps.launch.resume import lookup_lines
from atlas_sweeps.launch.submit import parse_submit_line, submit_script
from atlas_sweeps.remote.protocol import parse_facts

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _bin(tmp_path: Path, **tools: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, body in tools.items():
        path = bindir / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(0o755)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    Path(env["HOME"]).mkdir(exist_ok=True)
    return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, env=env)


def test_protocol_ignores_noise_from_login_files() -> None:
    assert parse_facts("Welcome to the cluster!\nATLAS root L2hvbWUvdQ==\nATLAS x\n") == [("root", "/home/u"), ("x", "")]


def test_preflight_resolves_home_and_reports_all_problems(tmp_path: Path) -> None:
    env = _bin(tmp_path, sbatch='echo "sbatch: error: invalid partition specified: gpu" >&2; exit 1',
               scontrol='echo "MaxArraySize            = 77"')
    script = preflight_script(remote_dir="~/sweeps", setup=("echo noisy setup line",), interpreter="nopython-xyz",
                              need="nopython-xyz", test_script="#!/bin/bash\necho hi\n")
    report = parse_preflight(_bash(script, env).stdout)
    assert report.root == f"{tmp_path}/home/sweeps"
    assert Path(report.root).is_dir()
    assert report.max_array_size == 77
    assert any("'nopython-xyz' is not found" in p for p in report.problems)
    assert any("invalid partition specified: gpu" in p for p in report.problems)


def _resume_preflight(tmp_path: Path, **tools: str):  # type: ignore[no-untyped-def]
    env = _bin(tmp_path, sbatch='exit 0', **tools)
    script = preflight_script(remote_dir=str(tmp_path / "root"), setup=(), interpreter="bash", need="bash",
                              test_script="#!/bin/bash\n", snapshot_name="l1",
                              job_lookup=tuple(lookup_lines("l1", since=0)))
    return parse_preflight(_bash(script, env).stdout)


def test_preflight_on_resume_lists_the_launchs_arrays_by_name_prefix(tmp_path: Path) -> None:
    report = _resume_preflight(
        tmp_path, scontrol='printf "MaxArraySize            = 51\\nMinJobAge               = 120 sec\\n"',
        squeue='echo "41|atlas-l1-s-c3"; echo "9|atlas-l10-s"; echo "8|other-job"',
        sacct='printf "40_0|atlas-l1-t\\n40_1|atlas-l1-t\\n41_[2-5]|atlas-l1-s-c3\\n7|atlas-l2-s\\n"')
    assert report.problems == () and report.complete
    assert report.python and report.python.endswith("/bash")
    assert report.max_array_size == 51
    jobs = report.cluster_jobs
    assert jobs.answered and jobs.squeue_error is None and jobs.sacct_error is None and jobs.min_job_age == 120
    assert jobs.squeue == (("atlas-l1-s-c3", "41"),)  # another launch's ids share the first characters
    assert sorted(set(jobs.sacct)) == [("atlas-l1-s-c3", "41"), ("atlas-l1-t", "40")]


def test_preflight_on_resume_reports_lookup_errors_and_the_snapshot(tmp_path: Path) -> None:
    report = _resume_preflight(
        tmp_path, scontrol="true",
        squeue='echo "slurm_load_jobs error: Socket timed out on send/recv operation" >&2; exit 1',
        sacct='echo "sacct: error: Slurm accounting storage is disabled" >&2; exit 1')
    jobs = report.cluster_jobs
    assert jobs.answered and "Socket timed out" in (jobs.squeue_error or "")
    assert "accounting storage is disabled" in (jobs.sacct_error or "")
    assert report.snapshot == "missing" and jobs.min_job_age == 300
    snap = tmp_path / "root" / "snapshots" / "l1"
    snap.mkdir(parents=True)
    assert _resume_preflight(tmp_path, scontrol="true").snapshot == "writable"
    snap.chmod(0o555)  # the freeze's mark, whoever looks (root too)
    assert _resume_preflight(tmp_path, scontrol="true").snapshot == "frozen"


def _prepared(tmp_path: Path):  # type: ignore[no-untyped-def]
    plan = build_plan(load_composite(CONFIGS / "composite_grid.yml"), backend="local", expand=True, nodes=2, test_time=1,
                      gpus_per_job=1)
    layout = LaunchLayout(root=str(tmp_path / "root"), launch_id="l1")
    backend = LocalBackend()
    return layout, [prepare_sweep(s, backend.create(s, launch_id="l1", entity=None, project="p"), backend=backend,
                                  profile=Profile(name="t"), layout=layout, template=load_template(None),
                                  launch_id="l1", project="p", entity=None, max_array_size=1001)
                    for s in plan.sweeps]


def test_submit_writes_files_submits_each_array_once_and_reports_ids(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    env = _bin(tmp_path, sbatch=f'echo "$*" >> {calls}; echo $(( $(wc -l < {calls}) + 100 ))')
    layout, sweeps = _prepared(tmp_path)
    result = _bash(submit_script(sweeps, root=layout.root, extra_dirs=(layout.wandb_dir("x"),)), env)
    events = [e for e in map(parse_submit_line, result.stdout.splitlines()) if e]
    assert [(e.key, e.job_id) for e in events[:-1]] == [(sweeps[0].submissions[0].key, "101"),
                                                        (sweeps[1].submissions[0].key, "102")]
    assert events[-1].kind == "done"  # it ran to its end
    assert Path(sweeps[0].script_path).read_text() == sweeps[0].script_text
    for path, data in sweeps[0].files.items():
        assert Path(path).read_bytes() == data
    assert Path(sweeps[0].log_dir).is_dir() and Path(layout.wandb_dir("x")).is_dir()
    assert os.access(sweeps[0].script_path, os.X_OK)
    assert len(calls.read_text().splitlines()) == 2


def test_submit_stops_at_the_first_failure_and_skips_what_was_done(tmp_path: Path) -> None:
    env = _bin(tmp_path, sbatch='echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1')
    layout, sweeps = _prepared(tmp_path)
    first, second = sweeps[0].submissions[0].key, sweeps[1].submissions[0].key
    result = _bash(submit_script(sweeps, root=layout.root, skip=frozenset({first})), env)
    events = [e for e in map(parse_submit_line, result.stdout.splitlines()) if e]
    assert len(events) == 1 and events[0].key == second and events[0].job_id is None and events[0].kind == "failed"
    assert "QOSMaxSubmitJobPerUserLimit" in (events[0].error or "")
    assert result.returncode == 3


def test_submit_on_a_full_disk_reports_the_cause_the_failing_step_printed(tmp_path: Path) -> None:
    env = _bin(tmp_path, sbatch="echo 5", tar='cat >/dev/null; echo "tar: l1/s/job.sbatch: Cannot write: '
                                               'No space left on device" >&2; exit 2')
    layout, sweeps = _prepared(tmp_path)
    result = _bash(submit_script(sweeps, root=layout.root), env)
    events = [e for e in map(parse_submit_line, result.stdout.splitlines()) if e]
    assert [e.kind for e in events] == ["fatal"] and result.returncode == 1
    assert "could not unpack the job files" in (events[0].error or "")
    assert "No space left on device" in (events[0].error or "")


def test_preflight_prepares_the_snapshot_where_symlinks_lead_and_names_the_previous_one(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "snapshots" / "l0").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "link").symlink_to(real)
    env = _bin(tmp_path, sbatch="exit 0", scontrol="true", rsync='echo "rsync  version 3.2.7  protocol version 32"')
    script = preflight_script(remote_dir="~/link", setup=(), interpreter="bash", need="bash",
                              test_script="#!/bin/bash\n", snapshot_name="l1", previous_snapshot="l0")
    report = parse_preflight(_bash(script, env).stdout)
    assert report.problems == () and report.site is not None
    assert report.site.snapshots == str(real / "snapshots")  # rsync's --link-dest needs the real path
    assert (report.site.state, report.site.previous, report.snapshot) == ("missing", "l0", "missing")
    assert report.site.rsync.startswith("rsync  version 3.2.7")
    gone = preflight_script(remote_dir="~/link", setup=(), interpreter="bash", need="bash",
                            test_script="#!/bin/bash\n", snapshot_name="l1", previous_snapshot="l9")
    assert parse_preflight(_bash(gone, env).stdout).site.previous is None  # type: ignore[union-attr]


def test_preflight_names_an_unwritable_root_once_and_reports_no_snapshot(tmp_path: Path) -> None:
    env = _bin(tmp_path, sbatch="exit 0", scontrol="true", mkdir='echo "mkdir: Permission denied" >&2; exit 1')
    script = preflight_script(remote_dir="/nowhere/root", setup=(), interpreter="bash", need="bash",
                              test_script="#!/bin/bash\n", snapshot_name="l1")
    report = parse_preflight(_bash(script, env).stdout)
    assert [p for p in report.problems if "Permission denied" in p] == ["cannot create /nowhere/root: mkdir: Permission denied"]
    assert report.site is None and report.snapshot is None


def test_submit_freezes_the_snapshot_before_the_first_sbatch_and_says_so(tmp_path: Path) -> None:
    snap = tmp_path / "root" / "snapshots" / "l1"
    (snap / "pkg").mkdir(parents=True)
    (snap / "pkg" / "m.py").write_text("x = 1\n")
    calls = tmp_path / "calls"
    env = _bin(tmp_path, sbatch=f'find {snap} -perm /222 >> {calls}; echo "$*" >> {calls}; echo 7')
    layout, sweeps = _prepared(tmp_path)
    result = _bash(submit_script(sweeps, root=layout.root, freeze=str(snap)), env)
    events = [e for e in map(parse_submit_line, result.stdout.splitlines()) if e]
    assert [e.kind for e in events] == ["frozen", "submitted", "submitted", "done"]
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 and not any(line.startswith(str(snap)) for line in lines)  # nothing writable at sbatch
    assert all(p.stat().st_mode & 0o222 == 0 for p in (snap, *snap.rglob("*")))


def test_submit_stops_before_any_sbatch_when_the_freeze_fails(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    env = _bin(tmp_path, sbatch=f'echo "$*" >> {calls}; echo 7', chmod='echo "chmod: Read-only file system" >&2; exit 1')
    layout, sweeps = _prepared(tmp_path)
    result = _bash(submit_script(sweeps, root=layout.root, freeze=str(tmp_path / "snap")), env)
    events = [e for e in map(parse_submit_line, result.stdout.splitlines()) if e]
    assert [e.kind for e in events] == ["fatal"] and result.returncode == 1
    assert "could not make the code snapshot" in (events[0].error or "") and "Read-only file system" in (events[0].error or "")
    assert not calls.exists()


def test_preflight_names_a_snapshots_directory_it_cannot_enter(tmp_path: Path) -> None:
    env = _bin(tmp_path, sbatch="exit 0", scontrol="true", mkdir="exit 0")  # as if it existed, but cannot be entered
    script = preflight_script(remote_dir=str(tmp_path / "root"), setup=(), interpreter="bash", need="bash",
                              test_script="#!/bin/bash\n", snapshot_name="l1")
    (tmp_path / "root").mkdir()
    report = parse_preflight(_bash(script, env).stdout)
    assert any(p.startswith(f"cannot enter {tmp_path}/root/snapshots: ") for p in report.problems), report.problems
    assert report.site is None

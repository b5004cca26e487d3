"""The wandb backend against the in-process W&B stand-in (real wandb client): quick preflight failures,
sweeps created with the merged config, agent job scripts (run by bash: counts, exit codes of runs, no key),
the cluster-side credential check, stop, progress with its cache, clean, and the sync script's facts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from atlas_sweeps.backends.base import CreatedSweep
from atlas_sweeps.backends.wandb.backend import WandbBackend, agent_counts
from atlas_sweeps.backends.wandb.progress import clear_cache, fetch_progress
from atlas_sweeps.backends.wandb.sync import parse_sync, sync_script
from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.config.templates import load_template
from atlas_sweeps.errors import BackendError
from atlas_sweeps.launch.jobs import prepare_sweep
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.plan import PlannedSweep, build_plan
from atlas_sweeps.state.store import LaunchRecord, SweepRecord
from tests.standin.server import StandinServer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def w_env(wandb_standin: StandinServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandinServer:
    """This process pointed at the stand-in with the key in WANDB_API_KEY and an empty netrc."""
    for name in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_API_KEY", wandb_standin.api_key)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    for name, sub in (("WANDB_DIR", "d"), ("WANDB_CONFIG_DIR", "c"), ("WANDB_CACHE_DIR", "k")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    clear_cache()
    return wandb_standin


def _plan(backend: str = "wandb", nodes: int = 2) -> list[PlannedSweep]:
    return list(build_plan(load_composite(CONFIGS / "composite_grid.yml"), backend=backend,
                           expand=backend == "local", nodes=nodes, test_time=1, gpus_per_job=1).sweeps)


def _failure(fn) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """How long ``fn`` took to raise its BackendError, and the error's message."""
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        fn()
    return time.monotonic() - start, str(info.value)


# -- preflight: every failure is clear and quick --------------------------------------------------------
def test_preflight_is_one_query_and_learns_the_default_entity(w_env: StandinServer) -> None:
    backend = WandbBackend(base_url=w_env.base_url)
    mark = len(w_env.operations)
    backend.preflight(entity=None, project="unit-entity")
    assert w_env.ops_since(mark) == ["Viewer"]
    made = backend.create(_plan()[0], launch_id="ent01", entity=None, project="unit-entity")
    assert made.sweep_id.split("/")[0] == w_env.entity  # the key's own entity, learnt by the preflight
    backend.preflight(entity=w_env.entity, project="unit-entity")  # naming it is fine too


def test_missing_key_fails_at_once_saying_how_to_log_in(w_env: StandinServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    took, message = _failure(lambda: WandbBackend(base_url=w_env.base_url).preflight(entity=None, project="p"))
    assert took < 2 and f"wandb login --relogin --host {w_env.base_url}" in message


def test_key_from_netrc_entry_with_port_is_used(w_env: StandinServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {w_env.host}:{w_env.port}\n  login user\n  password {'y' * 40}\n")
    netrc.chmod(0o600)
    _, message = _failure(lambda: WandbBackend(base_url=w_env.base_url).preflight(entity=None, project="p"))
    assert "refused the API key" in message  # the netrc entry is the key sent
    netrc.write_text(f"machine {w_env.host}:{w_env.port}\n  login user\n  password {w_env.api_key}\n")
    mark = len(w_env.operations)
    WandbBackend(base_url=w_env.base_url).preflight(entity=None, project="p")
    assert w_env.ops_since(mark) == ["Viewer"]  # accepted: the stand-in logs authenticated requests only


def test_wrong_key_unreachable_server_and_bad_entity_fail_in_seconds(w_env: StandinServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    took, message = _failure(lambda: WandbBackend(base_url=w_env.base_url).preflight(entity=None, project="p"))
    assert took < 3 and "refused the API key" in message
    monkeypatch.setenv("WANDB_API_KEY", w_env.api_key)
    took, message = _failure(lambda: WandbBackend(base_url="http://127.0.0.1:9").preflight(entity=None, project="p"))
    assert took < 3 and "cannot reach the W&B server http://127.0.0.1:9" in message
    took, message = _failure(lambda: WandbBackend(base_url=w_env.base_url).preflight(entity="nobody", project="p"))
    assert took < 3 and "entity 'nobody'" in message and w_env.entity in message


def test_dry_run_contacts_nothing_and_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    backend = WandbBackend(base_url="http://127.0.0.1:9", dry_run=True)
    backend.preflight(entity="e", project="p")
    job = backend.job(_plan()[0], CreatedSweep(sweep_id="<created at launch>"),
                      layout=LaunchLayout(root="/r", launch_id="L"), wrap=None)
    assert "wandb agent --forward-signals" in job.command


# -- creating, stopping, progress ------------------------------------------------------------------------
def test_create_makes_one_sweep_with_the_merged_config_and_restores_the_environment(
        w_env: StandinServer) -> None:
    backend = WandbBackend(base_url=w_env.base_url)
    backend.preflight(entity=None, project="unit-create")
    planned = _plan()[0]
    made = backend.create(planned, launch_id="abc123", entity=None, project="unit-create")
    entity, project, sweep_id = made.sweep_id.split("/")
    assert (entity, project) == (w_env.entity, "unit-create")
    assert made.url == f"{w_env.base_url}/{entity}/unit-create/sweeps/{sweep_id}"
    config = w_env.sweep(sweep_id).config
    assert config["parameters"] == planned.spec.config["parameters"]
    assert config["name"] == f"{planned.name} (abc123)"
    assert "WANDB_PROJECT" not in os.environ and "WANDB_ENTITY" not in os.environ


def test_stop_finishes_the_sweep(w_env: StandinServer) -> None:
    backend = WandbBackend(base_url=w_env.base_url)
    made = backend.create(_plan()[1], launch_id="stop01", entity=w_env.entity, project="unit-stop")
    backend.stop(made.sweep_id)
    assert w_env.sweep(made.sweep_id.split("/")[2]).state == "FINISHED"
    backend.stop(made.sweep_id)  # already stopped: nothing to do


def test_progress_is_one_query_per_sweep_and_cached(w_env: StandinServer) -> None:
    backend = WandbBackend(base_url=w_env.base_url)
    made = [backend.create(p, launch_id="prog01", entity=w_env.entity, project="unit-progress") for p in _plan()]
    sweep_id = made[0].sweep_id.split("/")[2]
    with w_env.store.lock:
        for state in ("finished", "finished", "failed"):
            run, _ = w_env.store.upsert_run(entity=w_env.entity, project="unit-progress",
                                            run_id=f"r{state}{len(w_env.store.runs)}")
            run.sweep, run.state = sweep_id, state
    records = [SweepRecord(launch_id="prog01", name=p.name, tags=(), runs=3, jobs=2, config={}, log_dir="",
                           sweep_id=m.sweep_id) for p, m in zip(_plan(), made, strict=True)]
    records.append(SweepRecord(launch_id="x", name="local", tags=(), runs=1, jobs=1, config={}, log_dir="",
                               sweep_id="x/local"))
    mark = len(w_env.operations)
    progress = backend.progress(records)  # the seam status and ls use
    assert w_env.ops_since(mark) == ["SweepWithRuns", "SweepWithRuns"]
    assert progress[made[0].sweep_id].runs_by_state == {"finished": 2, "failed": 1}
    assert progress[made[1].sweep_id].runs_by_state == {}
    assert "x/local" not in progress
    fetch_progress(records, base_url=w_env.base_url)
    assert len(w_env.ops_since(mark)) == 2  # answered from the cache


def test_progress_of_an_unreachable_server_is_empty_and_quick(w_env: StandinServer) -> None:
    record = SweepRecord(launch_id="x", name="s", tags=(), runs=1, jobs=1, config={}, log_dir="", sweep_id="e/p/s")
    start = time.monotonic()
    assert fetch_progress([record], base_url="http://127.0.0.1:9") == {}
    assert time.monotonic() - start < 3


# -- the job script, run by bash ---------------------------------------------------------------------------
def test_agent_counts_add_up_to_the_runs() -> None:
    for runs, tasks in ((3, 2), (6, 6), (10, 3), (1, 1), (1000, 7)):
        base, extra = agent_counts(runs, tasks)
        assert sum(base + (i < extra) for i in range(tasks)) == runs


def _render(tmp_path: Path, planned: PlannedSweep, *, wrap: str | None = None) -> tuple[str, dict[str, bytes]]:
    layout = LaunchLayout(root=str(tmp_path / "remote"), launch_id="L1")
    prepared = prepare_sweep(planned, CreatedSweep(sweep_id="ent/proj/sw1"), backend=WandbBackend(base_url="https://h:1"),
                             profile=Profile(name="t", wrap=wrap), layout=layout, template=load_template(None),
                             launch_id="L1", project="proj", entity="ent", max_array_size=1001)
    return prepared.script_text, prepared.files


def _stage_job(tmp_path: Path, script: str, files: dict[str, bytes], *, agent: str, task: int = 0) -> dict[str, str]:
    """``script`` as ``job.sh`` with its files, the snapshot, and a ``wandb`` stand-in running ``agent`` (bash)
    first on PATH; the environment task ``task`` runs in."""
    for path, data in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "wandb").write_text("#!/bin/bash\n" + agent)  # what the agent does with its runs
    (bin_dir / "wandb").chmod(0o755)
    snapshot = tmp_path / "remote" / "snapshots" / "L1"
    snapshot.mkdir(parents=True, exist_ok=True)
    (tmp_path / "job.sh").write_text(script)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "SLURM_ARRAY_TASK_ID": str(task),
            "TMPDIR": str(tmp_path)}


def _run_job(tmp_path: Path, script: str, files: dict[str, bytes], *, agent: str, task: int) -> subprocess.CompletedProcess:
    env = _stage_job(tmp_path, script, files, agent=agent, task=task)
    return subprocess.run(["bash", str(tmp_path / "job.sh")], capture_output=True, text=True, env=env, timeout=30)


def test_job_runs_its_share_and_fails_with_a_failed_runs_exit_code(tmp_path: Path) -> None:
    script, files = _render(tmp_path, _plan(nodes=2)[0])
    assert 'wandb agent --forward-signals --count "$atlas_count" ent/proj/sw1' in script
    assert "export WANDB_BASE_URL=https://h:1" in script
    # the fake agent prints its args, then starts runs with a bare `python` as wandb's agent does, exiting 0
    agent = ('echo "agent $*"\nWANDB_RUN_ID=r1 python -c "pass"\n'
             'WANDB_RUN_ID=r2 python -c "import sys; sys.exit(3)"\nexit 0\n')
    first = _run_job(tmp_path, script, files, agent=agent, task=0)
    assert "agent agent --forward-signals --count 2 ent/proj/sw1" in first.stdout
    assert first.returncode == 3, first.stderr
    assert "1 of 2 run(s) failed (last exit code 3)" in first.stderr
    ok = _run_job(tmp_path, script, files, agent='echo "agent $*"\npython -c "pass"\n', task=1)
    assert ok.returncode == 0 and "--count 1 " in ok.stdout
    assert not list(tmp_path.glob("atlas-sweeps.*")), "the wrapper dir is removed"


def test_agents_own_failure_is_the_jobs_exit_code(tmp_path: Path) -> None:
    script, files = _render(tmp_path, _plan()[0])
    assert _run_job(tmp_path, script, files, agent="exit 1\n", task=0).returncode == 1


def test_wrap_prefixes_the_agent_and_no_key_is_in_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "secret_key_" + "s" * 40)
    script, files = _render(tmp_path, _plan()[0], wrap="singularity exec img.sif")
    assert "\nsingularity exec img.sif wandb agent --forward-signals" in script
    # the exit-code wrapper must start the container's python, not the host's
    assert "atlas_python=$(singularity exec img.sif sh -c 'command -v python || command -v python3'" in script
    blob = script + "".join(d.decode() for d in files.values())
    assert "secret_key_" not in blob and "WANDB_API_KEY=" not in blob  # the gate only reads the user's own


# -- cluster-side credential check -----------------------------------------------------------------------
def _check(tmp_path: Path, *, netrc: str | None, mode: int = 0o600, key: str | None = None) -> list[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if netrc is not None:
        (home / ".netrc").write_text(netrc)
        (home / ".netrc").chmod(mode)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **({"WANDB_API_KEY": key} if key else {})}
    script = "\n".join(WandbBackend(base_url="http://127.0.0.1:4321").remote_checks())
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=10).stdout
    from atlas_sweeps.launch.preflight import parse_preflight

    return list(parse_preflight(out + "ATLAS root Lw==\n").problems)


def test_cluster_check_wants_a_netrc_entry_for_the_server(tmp_path: Path) -> None:
    problems = _check(tmp_path, netrc=None)
    assert len(problems) == 1 and "wandb login --host http://127.0.0.1:4321" in problems[0]
    assert "for user " in problems[0] and "$(id" not in problems[0]
    assert _check(tmp_path, netrc="machine api.wandb.ai login user password k\n")  # another host: no
    assert _check(tmp_path, netrc="machine 127.0.0.1:4321\n  login user\n  password k\n") == []
    assert "chmod 600" in _check(tmp_path, netrc="machine 127.0.0.1:4321 login u password k\n", mode=0o644)[0]
    assert _check(tmp_path, netrc=None, key="k" * 40) == []


# -- sync script and its facts -----------------------------------------------------------------------------
def test_sync_script_quotes_paths_and_parses_facts() -> None:
    rec = LaunchRecord(id="abc123", created=0, config_path="c.yml", config_text="", cluster="c", backend="local",
                       nodes=1, remote_dir="/home/u/my dir", snapshot="s", status="submitted", total_runs=1,
                       total_hours=1)
    profile = Profile(name="c", setup=("source /v/bin/activate",), wandb_base_url="http://127.0.0.1:5")
    script = sync_script([rec], profile=profile, dry_run=False)
    assert "for d in '/home/u/my dir/wandb/abc123'/*/wandb/offline-run-*; do" in script
    assert "export WANDB_BASE_URL=http://127.0.0.1:5" in script and "source /v/bin/activate" in script
    assert "wandb sync" not in sync_script([rec], profile=profile, dry_run=True)
    result = parse_sync("noise\nATLAS found:abc123 MyAx\nATLAS synced:abc123 MA==\n", cluster="c")
    assert [(i.launch_id, i.pending, i.already_synced, i.exit_code, i.ok) for i in result.launches] == [
        ("abc123", 3, 1, 0, True)]


def _signalled_job(tmp_path: Path, planned: PlannedSweep, *, agent: str) -> tuple[Path, dict[str, str]]:
    """The rendered job script of ``planned`` with its files, a ``wandb`` stand-in running ``agent`` (bash) and a
    ``scontrol`` that records its arguments; the runs (``run.py``) checkpoint and exit on SIGUSR1."""
    script, files = _render(tmp_path, planned)
    env = _stage_job(tmp_path, script, files, agent=agent)
    (tmp_path / "run.py").write_text(
        "import os, signal, sys, time\n"
        "def stop(signum, frame):\n"
        "    print('run checkpointed', os.environ.get('WANDB_RUN_ID', ''), flush=True); sys.exit(1)\n"
        "signal.signal(signal.SIGUSR1, stop)\nprint('run started', flush=True)\ntime.sleep(20)\n")
    (tmp_path / "bin" / "scontrol").write_text(f'#!/bin/sh\necho "$*" > {tmp_path}/scontrol-calls\n')
    (tmp_path / "bin" / "scontrol").chmod(0o755)
    env["SLURM_ARRAY_JOB_ID"] = "77"
    return tmp_path / "job.sh", env


def test_usr1_reaches_the_agents_run_not_the_agent_and_the_task_requeues(tmp_path: Path) -> None:
    # like wandb's agent: its runs in their own process group; a USR1 to the agent itself would kill it
    job_sh, env = _signalled_job(tmp_path, _plan()[0], agent=f"set -m\nWANDB_RUN_ID=r1 python {tmp_path}/run.py &\n"
                                 "wait $!\necho 'agent saw its run end'\nsleep 20\n")
    log = tmp_path / "task.log"
    with log.open("w") as fh:
        job = subprocess.Popen(["bash", str(job_sh)], stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 15
        while "run started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        job.send_signal(signal.SIGUSR1)  # Slurm's --signal=B:USR1: the batch shell only
        assert job.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while "agent saw its run end" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the agent (left to Slurm's requeue to end) goes on after its run
    out = log.read_text()
    assert "run checkpointed" in out and "agent saw its run end" in out  # the agent outlived the signal
    assert (tmp_path / "scontrol-calls").read_text().split() == ["requeue", "77_0"]
    assert "run(s) failed" not in out and not list((tmp_path / "remote").rglob("*.exit"))


def test_usr1_reaches_the_run_of_every_agent_of_a_task_running_two(tmp_path: Path) -> None:
    from dataclasses import replace

    from atlas_sweeps.launch.packing import Packing

    planned = replace(_plan(nodes=1)[0], packing=Packing(runs_per_job=2, parallel=2))
    # two agents in the task, each with a run in its own process group (as wandb's agent starts them)
    job_sh, env = _signalled_job(tmp_path, planned, agent=f"set -m\nWANDB_RUN_ID=run$RANDOM python {tmp_path}/run.py &\n"
                                 "wait $!\nsleep 20\n")
    logs = [tmp_path / "remote" / "logs" / "L1" / planned.name / f"77_0.a{lane}.out" for lane in (0, 1)]
    logs[0].parent.mkdir(parents=True)  # Slurm makes --output's directory: the launch did
    job = subprocess.Popen(["bash", str(job_sh)], stdout=subprocess.DEVNULL, stderr=(tmp_path / "err").open("w"),
                           env=env)
    deadline = time.monotonic() + 15
    while not all(p.exists() and "run started" in p.read_text() for p in logs) and time.monotonic() < deadline:
        time.sleep(0.1)
    job.send_signal(signal.SIGUSR1)  # Slurm's --signal=B:USR1: the batch shell only
    assert job.wait(timeout=30) == 0, (tmp_path / "err").read_text()
    texts = [p.read_text() for p in logs]
    assert all("checkpointed run" in text for text in texts), texts  # both lanes' runs got the checkpoint signal
    assert (tmp_path / "scontrol-calls").read_text().split() == ["requeue", "77_0"]

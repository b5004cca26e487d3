"""``launch``: composite file → plan → preflight → code snapshot → sweeps → scripts → ``sbatch``, with every
step recorded in the state database as it happens, so a launch cut short can be finished by ``--resume``.

Three remote calls, whatever the number of sweeps and jobs: the preflight (which also prepares the code
snapshot), the rsync, and the submit call (which first freezes the snapshot: read-only marks it complete).
Order matters: everything that can fail is checked (config, profile, template, one preflight call) before
a sweep is created, and what each step achieved (snapshot synced and frozen, chunking, sweep ids, job ids)
is written down the moment it exists. A resume trusts the cluster over any status: its preflight says
whether the snapshot is complete and which arrays exist, and one process at a time may act on a launch
(lock.py)."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from atlas_sweeps.backends import choose_backend, make_backend
from atlas_sweeps.backends.base import CreatedSweep, SweepBackend
from atlas_sweeps.config.composite import CompositeFile, load_composite, resolve_config_path
from atlas_sweeps.config.profile import Profile, load_profile
from atlas_sweeps.config.templates import Template, load_template
from atlas_sweeps.errors import AtlasError, ConfigError, Interrupted, RemoteError, UsageError
from atlas_sweeps.launch.jobs import PreparedSweep, prepare_sweep
from atlas_sweeps.launch.layout import LaunchLayout, guessed_home, resolve_root
from atlas_sweeps.launch.packing import packing_of
from atlas_sweeps.launch.plan import Plan, PlannedSweep, build_plan, with_prior_runs, without_runs
from atlas_sweeps.launch.preflight import PreflightReport, parse_preflight, preflight_script
from atlas_sweeps.launch.resume import ChunkKey, adopt_submitted, lookup_lines
from atlas_sweeps.launch.submit import parse_submit_line, submit_script
from atlas_sweeps.remote import Remote
from atlas_sweeps.remote.snapshot import SnapshotSite, rsync_snapshot
from atlas_sweeps.slurm.sbatch import DEFAULT_MAX_ARRAY_SIZE
from atlas_sweeps.state.lock import launch_lock
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord

_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"

# Launch statuses, in the order a launch goes through them (a summary for people: resume decides from what
# was verified, never from the status).
RECORDED, SYNCING, SYNCED = "recorded", "syncing", "synced"
SUBMITTING, SUBMITTED, PARTIAL = "submitting", "submitted", "partial"


@dataclass(frozen=True)
class LaunchOptions:
    """What the user asked for on the command line (recorded, so ``--resume`` repeats it exactly)."""

    config: str
    cluster: str | None = None
    nodes: int = 1
    backend: str | None = None
    test_time: float = 1.0
    count: int | None = None
    tags_param: str | None = None
    project: str | None = None
    entity: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # the hypothesis the launch tests: recorded, shown by ls and status, W&B's description
    skip: dict[str, list[str]] = field(default_factory=dict)  # --skip-done: sweep -> run keys left out
    runs_per_job: int | None = None  # --runs-per-job: runs per array task (launch/packing.py)
    parallel_per_job: int | None = None  # --parallel-per-job: of those, how many at once
    prior: dict[str, dict[str, Any]] = field(default_factory=dict)  # --skip-done, W&B: sweep -> points, run ids


@dataclass(frozen=True)
class Prepared:
    """Everything known before contacting anything: the parsed file, profile, backend and plan."""

    options: LaunchOptions
    composite: CompositeFile
    config_text: str
    profile: Profile
    template: Template
    backend: str
    backend_notice: str | None
    project: str
    entity: str | None
    plan: Plan
    code_dir: Path


@dataclass(frozen=True)
class LaunchResult:
    """What a launch did: its record, its sweeps and their jobs."""

    launch: LaunchRecord
    sweeps: tuple[SweepRecord, ...]
    jobs: tuple[JobRecord, ...]
    remote_calls: int
    snapshot_files: int | None = None


def new_launch_id() -> str:
    """A short id users can type: six characters, starting with a letter."""
    first = secrets.choice(_ID_ALPHABET[:23])
    return first + "".join(secrets.choice(_ID_ALPHABET) for _ in range(5))


def _check_program(composite: CompositeFile, text: str, *, code_dir: Path) -> None:
    """The program must be in the code that gets synced: jobs run it relative to the snapshot, as W&B's agent
    runs it relative to its working directory. Launching from the wrong directory is the usual cause."""
    for spec in composite.sweeps:
        program = spec.config.get("program")
        command = spec.config.get("command")
        if not isinstance(program, str) or (command and "${program}" not in command):
            continue
        if not Path(program).is_absolute() and not (code_dir / program).exists():
            match = re.search(r"^program\s*:", text, re.MULTILINE)
            raise ConfigError(f"program {program!r} is not in {code_dir}, the directory whose code is synced",
                              path=str(composite.path), line=text[:match.start()].count("\n") + 1 if match else None,
                              hint="run atlas-sweeps from the directory that holds the program "
                                   "(where you would run `wandb agent`)")


def prepare(options: LaunchOptions, *, cwd: Path, dry_run: bool = False) -> Prepared:
    """Parse and validate everything local; nothing is contacted."""
    path = resolve_config_path(options.config, cwd=cwd)
    composite = load_composite(path, tags_param=options.tags_param)
    try:
        profile = load_profile(options.cluster, project_dir=cwd)
    except UsageError as exc:
        if not dry_run or options.cluster or isinstance(exc, ConfigError):  # a broken profile file shows
            raise
        profile = Profile(name="(no cluster profile)")
    profile = profile.with_overrides(**options.overrides)
    template = load_template(profile.template, base_dir=cwd)
    backend, notice = choose_backend(options.backend, profile)
    first = composite.sweeps[0].config
    project = options.project or first.get("project") or profile.wandb_project or cwd.name
    entity = options.entity or first.get("entity") or profile.wandb_entity or os.environ.get("WANDB_ENTITY")
    config_text = path.read_text()
    _check_program(composite, config_text, code_dir=cwd)
    if not dry_run:
        from atlas_sweeps.remote.rsync_version import require_local_rsync

        require_local_rsync()  # before any login prompt: a Mac's rsync 2.6.9 is refused with the fix
    # The packing asked for (the profile's as default), recorded as it takes effect: status and --resume read it.
    asked = {k: getattr(options, k) if getattr(options, k) is not None else getattr(profile, k)
             for k in ("runs_per_job", "parallel_per_job")}
    from_profile = [k for k in asked if getattr(options, k) is None and getattr(profile, k) is not None]
    packing = packing_of(**asked, where=f"{' and '.join(from_profile)} from cluster profile '{profile.name}'"
                         if from_profile else "")
    options = replace(options, runs_per_job=packing.runs_per_job, parallel_per_job=packing.parallel)
    plan = build_plan(composite, backend=backend, expand=make_backend(backend, dry_run=True).expands_runs,
                      nodes=options.nodes, test_time=options.test_time,
                      gpus_per_job=profile.slurm.gpus_per_job, count=options.count,
                      interpreter=profile.interpreter, packing=packing)
    plan = with_prior_runs(without_runs(plan, options.skip), options.prior)
    return Prepared(options=options, composite=composite, config_text=config_text, profile=profile,
                    template=template, backend=backend, backend_notice=notice, project=str(project),
                    entity=entity, plan=plan, code_dir=cwd)


def prepare_all(prepared: Prepared, *, launch_id: str, root: str, backend: SweepBackend,
                created: dict[str, CreatedSweep], max_array_size: int,
                sweeps: tuple[PlannedSweep, ...] | None = None) -> list[PreparedSweep]:
    """Render the scripts and submissions of ``sweeps`` (default: every sweep of the plan); pure."""
    layout = LaunchLayout(root=root, launch_id=launch_id)
    return [
        prepare_sweep(s, created.get(s.name) or CreatedSweep(sweep_id="<created at launch>"), backend=backend,
                      profile=prepared.profile, layout=layout, template=prepared.template, launch_id=launch_id,
                      project=prepared.project, entity=prepared.entity, max_array_size=max_array_size)
        for s in (prepared.plan.sweeps if sweeps is None else sweeps)
    ]


class Launcher:
    """Runs one launch (or the rest of one) against a Remote and a backend, recording as it goes."""

    def __init__(self, *, db: StateDB, remote_factory: Callable[[Profile], Remote],
                 on_step: Callable[[str], None] = lambda _msg: None,
                 on_rsync: Callable[[str], None] | None = None) -> None:
        self.db = db
        self.remote_factory = remote_factory
        self.on_step = on_step
        self.on_rsync = on_rsync

    # -- entry points ---------------------------------------------------------------------------------
    def launch(self, prepared: Prepared) -> LaunchResult:
        """A new launch."""
        backend = self._backend(prepared)
        self.on_step("checking the sweep backend")
        backend.preflight(entity=prepared.entity, project=prepared.project)
        launch_id = new_launch_id()
        with launch_lock(self.locks_dir, launch_id):
            record = self._record(prepared, launch_id)
            try:
                return self._run(prepared, record, backend, resuming=False)
            except BaseException as exc:
                current = self.db.launch(launch_id)
                if current and current.status == RECORDED and not any(s.sweep_id for s in self.db.sweeps(launch_id)):
                    self.db.delete_launch(launch_id)  # nothing was created anywhere: leave no trace
                    raise
                raise self._cut_short(launch_id, exc) from None

    def resume(self, launch_id: str, *, cwd: Path, force_resubmit_unknown: bool = False) -> LaunchResult:
        """Finish a launch that was cut short, submitting nothing twice. ``force_resubmit_unknown``: submit the
        chunks the database does not know even when the cluster cannot say whether they exist."""
        if self.db.launch(launch_id) is None:
            raise UsageError(f"no launch '{launch_id}' in the state database",
                             hint="'atlas-sweeps ls' lists launches")
        with launch_lock(self.locks_dir, launch_id):
            record = self.db.launch(launch_id)  # again, under the lock: another process may have finished it
            assert record is not None
            if record.status == SUBMITTED:
                raise UsageError(f"launch {launch_id} was submitted completely; nothing to resume",
                                 hint=f"'atlas-sweeps status --launch {launch_id}' shows its jobs")
            prepared = _prepare_recorded(record, cwd=cwd)
            backend = self._backend(prepared)
            self.on_step("checking the sweep backend")
            backend.preflight(entity=prepared.entity, project=prepared.project)
            try:
                return self._run(prepared, record, backend, resuming=True, force_unknown=force_resubmit_unknown)
            except BaseException as exc:
                raise self._cut_short(launch_id, exc) from None

    @property
    def locks_dir(self) -> Path:
        """Launch locks live beside the database they protect."""
        return self.db.path.parent / "locks"

    def _cut_short(self, launch_id: str, exc: BaseException) -> BaseException:
        """A launch that stopped after something was created: mark it partial and say how to finish it."""
        hint = f"'atlas-sweeps launch --resume {launch_id}' submits the rest, nothing twice"
        current = self.db.launch(launch_id)
        if current is None or current.status == SUBMITTED:
            return exc
        self.db.update_launch(launch_id, status=PARTIAL)
        if isinstance(exc, KeyboardInterrupt):
            return Interrupted(f"interrupted: launch {launch_id} is incomplete", hint=hint)
        if isinstance(exc, AtlasError) and "--resume" not in str(exc):
            exc.hint = f"{exc.hint}; {hint}" if exc.hint else hint
        return exc

    # -- the steps ----------------------------------------------------------------------------------
    def _backend(self, prepared: Prepared) -> SweepBackend:
        return make_backend(prepared.backend, profile=prepared.profile)

    def _record(self, prepared: Prepared, launch_id: str) -> LaunchRecord:
        from atlas_sweeps.remote.gitinfo import git_info

        git = git_info(prepared.code_dir)
        opts = prepared.options
        record = LaunchRecord(
            id=launch_id, created=time.time(), config_path=str(prepared.composite.path),
            config_text=prepared.config_text, cluster=prepared.profile.name, backend=prepared.backend,
            nodes=opts.nodes, remote_dir=prepared.profile.remote_dir, snapshot="", status=RECORDED,
            total_runs=prepared.plan.total_runs, total_hours=prepared.plan.total_hours, note=opts.note,
            git_commit=git.commit, git_branch=git.branch, git_dirty=git.dirty,
            options={"cluster": prepared.profile.name, "nodes": opts.nodes, "backend": prepared.backend,
                     "test_time": opts.test_time, "count": opts.count, "tags_param": opts.tags_param,
                     "project": prepared.project, "entity": prepared.entity, "overrides": opts.overrides,
                     "code_dir": str(prepared.code_dir), "config_name": prepared.composite.path.name,
                     "gpus_per_job": prepared.plan.gpus_per_job, "skip": opts.skip,
                     "runs_per_job": opts.runs_per_job, "parallel_per_job": opts.parallel_per_job,
                     **({"prior": opts.prior} if opts.prior else {})},
        )
        self.db.add_launch(record)
        for s in prepared.plan.sweeps:
            self.db.add_sweep(SweepRecord(launch_id=launch_id, name=s.name, tags=s.spec.tags, runs=s.runs,
                                          jobs=s.jobs, config=s.spec.config, log_dir="",
                                          run_params=s.run_params))
        return record

    def _run(self, prepared: Prepared, record: LaunchRecord, backend: SweepBackend, *, resuming: bool,
             force_unknown: bool = False) -> LaunchResult:
        launch_id = record.id
        self.on_step(f"connecting to {prepared.profile.name}")
        remote = self.remote_factory(prepared.profile)
        try:
            report = self._preflight(prepared, remote, record=record, backend=backend, resuming=resuming)
            site = report.site
            assert site is not None  # _preflight makes sure
            layout = LaunchLayout(root=report.root, launch_id=launch_id)
            files = None
            freeze: str | None = None
            if site.state != "frozen":  # a new launch, or a snapshot never completed: (re)sync, freeze on submit
                if record.snapshot:
                    raise RemoteError(f"the code snapshot {record.snapshot} of launch {launch_id} is "
                                      f"{site.state} on the cluster, though it was synced completely",
                                      hint="its code cannot be restored exactly: launch the sweep file again")
                self.db.update_launch(launch_id, status=SYNCING)
                files = self._sync(prepared, remote, site=site, launch_id=launch_id)
                self.db.update_launch(launch_id, status=SYNCED, remote_dir=report.root)
                freeze = site.path(launch_id)
            elif not record.snapshot:  # frozen by a submit call whose answer was lost
                self.db.update_launch(launch_id, snapshot=layout.snapshot, remote_dir=report.root)
            # The chunking is fixed before the first sbatch: job names and task ranges never change after.
            max_array_size = record.max_array_size or report.max_array_size
            if record.max_array_size is None:
                self.db.update_launch(launch_id, max_array_size=max_array_size)
            created = self._create_sweeps(prepared, backend, launch_id=launch_id, layout=layout)
            sweeps = prepare_all(prepared, launch_id=launch_id, root=report.root, backend=backend,
                                 created=created, max_array_size=max_array_size)
            adopted: dict[ChunkKey, str] = {}
            if resuming:
                recorded = self.db.jobs(launch_id)
                adopted = adopt_submitted(
                    launch_id=launch_id, cluster=report.cluster_jobs, now=time.time(), force_unknown=force_unknown,
                    expected={(s.name, sub.chunk.index): sub.job_name for s in sweeps for sub in s.submissions},
                    known={(j.sweep_name, j.chunk): j.job_id for j in recorded if j.attempt == 1},
                    retried=frozenset(j.job_name for j in recorded if j.attempt > 1),
                    submit_started=record.submit_started)
            self._submit(sweeps, remote, layout=layout, launch_id=launch_id, adopted=adopted,
                         cluster=prepared.profile.name, freeze=freeze)
            calls = remote.calls
        finally:
            remote.close()
        self.db.update_launch(launch_id, status=SUBMITTED)
        final = self.db.launch(launch_id)
        assert final is not None
        return LaunchResult(launch=final, sweeps=tuple(self.db.sweeps(launch_id)),
                            jobs=tuple(self.db.jobs(launch_id)), remote_calls=calls, snapshot_files=files)

    def _preflight(self, prepared: Prepared, remote: Remote, *, record: LaunchRecord, backend: SweepBackend,
                   resuming: bool) -> PreflightReport:
        """The one call before anything is created: it also prepares the launch's snapshot (says where it goes
        and whether it is complete) and, on resume, lists the launch's arrays."""
        self.on_step("preflight on the login node")
        launch_id = record.id
        # sbatch --test-only reads only the probe's #SBATCH lines; its paths need just be absolute (no '~').
        probe_root = resolve_root(prepared.profile.remote_dir, home=guessed_home(prepared.profile.user))
        [probe] = prepare_all(prepared, launch_id=launch_id, root=probe_root, backend=backend,
                              created={}, max_array_size=DEFAULT_MAX_ARRAY_SIZE, sweeps=prepared.plan.sweeps[:1])
        need = backend.required_command(interpreter=prepared.profile.interpreter)
        script = preflight_script(remote_dir=prepared.profile.remote_dir, setup=prepared.profile.setup,
                                  interpreter=prepared.profile.interpreter, need=need,
                                  test_script=probe.script_text, snapshot_name=launch_id,
                                  previous_snapshot=self._previous_snapshot(prepared.profile.name, launch_id),
                                  job_lookup=tuple(lookup_lines(launch_id, since=record.created)) if resuming else (),
                                  extra_checks=backend.remote_checks())
        result = remote.run_script(script, timeout=120)
        report = parse_preflight(result.stdout)
        lost = (report.root and not report.complete) or (report.site is None and not report.problems)
        if result.exit_code == 255 or lost:
            raise RemoteError(f"the connection to cluster '{prepared.profile.name}' was lost during the preflight",
                              hint="check the network and retry")
        if report.problems:
            detail = "; ".join(report.problems)
            done = "nothing more was submitted" if resuming else "nothing was created"
            raise UsageError(f"preflight on cluster '{prepared.profile.name}' failed: {detail}",
                              hint="fix what it names (often the profile: setup lines, Slurm options, "
                                   f"remote_dir) and launch again; {done}")
        return report

    def _sync(self, prepared: Prepared, remote: Remote, *, site: SnapshotSite, launch_id: str) -> int:
        self.on_step(f"syncing code from {prepared.code_dir}")
        try:
            result = rsync_snapshot(remote, site=site, local_dir=prepared.code_dir, snapshot_name=launch_id,
                                    excludes=list(prepared.profile.excludes), on_progress=self.on_rsync)
        except RemoteError as exc:
            exc.message += "; no sweep was created and nothing was submitted"
            raise
        return result.files_transferred

    def _previous_snapshot(self, cluster: str, launch_id: str) -> str | None:
        for rec in self.db.launches(limit=50):
            if rec.id != launch_id and rec.cluster == cluster and rec.snapshot:
                return rec.id
        return None

    def _create_sweeps(self, prepared: Prepared, backend: SweepBackend, *, launch_id: str,
                       layout: LaunchLayout) -> dict[str, CreatedSweep]:
        recorded = {s.name: s for s in self.db.sweeps(launch_id)}
        created: dict[str, CreatedSweep] = {}
        for sweep in prepared.plan.sweeps:
            rec = recorded.get(sweep.name)
            if rec is not None and rec.sweep_id:
                created[sweep.name] = CreatedSweep(sweep_id=rec.sweep_id, url=rec.url)
                continue
            self.on_step(f"creating sweep {sweep.name}")
            made = backend.create(sweep, launch_id=launch_id, entity=prepared.entity, project=prepared.project,
                                  note=prepared.options.note)
            self.db.set_sweep_id(launch_id, sweep.name, sweep_id=made.sweep_id, url=made.url,
                                 log_dir=layout.log_dir(sweep.name))
            created[sweep.name] = made
        return created

    def _submit(self, sweeps: list[PreparedSweep], remote: Remote, *, layout: LaunchLayout, launch_id: str,
                adopted: dict[ChunkKey, str], cluster: str, freeze: str | None) -> None:
        """One call: freeze the snapshot (``freeze``, when the sync was just made), then submit what the
        database does not hold, recording each job id (and the frozen snapshot) as its line arrives."""
        by_key = {sub.key: (sweep, sub) for sweep in sweeps for sub in sweep.submissions}
        for sweep, sub in by_key.values():
            if (sweep.name, sub.chunk.index) in adopted:  # submitted, but the answer was lost: adopt it
                self._record_job(launch_id, sweep, sub, adopted[(sweep.name, sub.chunk.index)])
        done = {(j.sweep_name, j.chunk) for j in self.db.jobs(launch_id)}
        skip = {key for key, (sweep, sub) in by_key.items() if (sweep.name, sub.chunk.index) in done}
        if len(skip) == len(by_key) and freeze is None:
            return
        if len(skip) < len(by_key):
            # from here on an array may exist that the database does not know: a resume must look for it
            self.db.update_launch(launch_id, status=SUBMITTING, submit_started=time.time())
            self.on_step(f"submitting {len(by_key) - len(skip)} job array(s)")
        problems: list[str] = []
        ended: list[str] = []

        def on_line(line: str) -> None:
            event = parse_submit_line(line)
            if event is None:
                return
            if event.kind == "frozen":  # the snapshot is complete: a resume never syncs it again
                self.db.update_launch(launch_id, snapshot=layout.snapshot)
                return
            if event.kind in ("done", "fatal"):
                ended.append(event.kind)
                if event.error:
                    problems.append(event.error)
                return
            sweep, sub = by_key[event.key]
            if event.job_id:
                self._record_job(launch_id, sweep, sub, event.job_id)
            else:
                problems.append(f"sbatch failed for {sweep.name}: {event.error}")

        script = submit_script(sweeps, root=layout.root, skip=frozenset(skip),
                               extra_dirs=tuple(layout.wandb_dir(s.name) for s in sweeps), freeze=freeze)
        lost: str | None = None
        try:
            code = remote.stream_script(script, on_stdout=on_line)
        except RemoteError as exc:
            code, lost = 255, str(exc)
        submitted = {(j.sweep_name, j.chunk) for j in self.db.jobs(launch_id)}
        if not problems and len(submitted) == len(by_key):
            return
        self.db.update_launch(launch_id, status=PARTIAL)
        counted = f"{len(submitted)} of {len(by_key)} job arrays were submitted and recorded"
        resume = f"'atlas-sweeps launch --resume {launch_id}'"
        if problems:
            raise RemoteError(f"launch {launch_id} is incomplete: {problems[0]}; {counted}",
                              hint=f"fix the cause, then {resume} submits the rest")
        if lost is not None or not ended:
            raise RemoteError(f"the connection to cluster '{cluster}' was lost while submitting launch {launch_id}: "
                              f"{counted}",
                              hint=f"{resume} submits the rest once the cluster answers, and records (never "
                                   "repeats) an array that sbatch accepted as the connection dropped")
        raise RemoteError(f"launch {launch_id} is incomplete: the submit script ended with exit code {code}; "
                          f"{counted}", hint=f"{resume} submits the rest")

    def _record_job(self, launch_id: str, sweep: PreparedSweep, sub: Any, job_id: str) -> None:
        self.db.add_job(JobRecord(
            launch_id=launch_id, sweep_name=sweep.name, chunk=sub.chunk.index, job_id=job_id,
            job_name=sub.job_name, array_spec=sub.chunk.array_spec, task_offset=sub.chunk.offset,
            task_count=sub.chunk.count, output=sub.output, error=sub.error, script=sweep.script_path,
            submitted=time.time()))


def prepare_recorded(record: LaunchRecord, *, cwd: Path) -> Prepared:
    """A recorded launch's plan, rebuilt as ``--resume`` does (``retry --resync`` renders its scripts again)."""
    return _prepare_recorded(record, cwd=cwd)


def _prepare_recorded(record: LaunchRecord, *, cwd: Path) -> Prepared:
    """Rebuild a launch's plan from the recorded file text and options (the file may have changed since)."""
    opts = record.options
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / str(opts.get("config_name") or Path(record.config_path).name)
        path.write_text(record.config_text)
        options = LaunchOptions(config=str(path), cluster=opts["cluster"], nodes=opts["nodes"],
                                backend=opts["backend"], test_time=opts["test_time"], count=opts["count"],
                                tags_param=opts["tags_param"], project=opts["project"], entity=opts["entity"],
                                overrides=opts.get("overrides") or {}, note=record.note,
                                skip=opts.get("skip") or {}, prior=opts.get("prior") or {},
                                runs_per_job=opts.get("runs_per_job"), parallel_per_job=opts.get("parallel_per_job"))
        code_dir = Path(opts.get("code_dir") or cwd)
        prepared = prepare(options, cwd=code_dir)
    return replace(prepared, composite=replace(prepared.composite, path=Path(record.config_path)))

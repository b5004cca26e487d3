"""The ``wandb`` backend: one W&B sweep per subtest, created through the wandb Python API; each job array
task runs ``wandb agent --forward-signals --count K`` on it. The agent exits 0 even when runs fail, so a
thin ``python`` wrapper first on the job's PATH records each run's exit code and the job exits non-zero
when any failed. Compute nodes use the cluster user's own ``wandb login``: no key is ever sent there."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from atlas_sweeps.backends.base import BackendBest, CreatedSweep, JobCommand, SweepProgress
from atlas_sweeps.backends.wandb.agent_gate import gate_lines
from atlas_sweeps.backends.wandb.credentials import (
    app_url,
    check_viewer,
    client_for,
    netrc_machine,
    resolve_base_url,
)
from atlas_sweeps.errors import BackendError
from atlas_sweeps.launch.layout import RUN_STREAM, LaunchLayout
from atlas_sweeps.launch.packing import agent_lanes_command
from atlas_sweeps.launch.plan import PlannedSweep
from atlas_sweeps.remote.protocol import EMIT_FUNCTION

if TYPE_CHECKING:
    from atlas_sweeps.backends.wandb.retry import WandbRetryPlan
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.config.templates import Template
    from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord

WRAPPER_NAME = "python-wrapper.py"

# Installed as `python` (after a `#!<real interpreter>` line the job adds). Signals are passed on to the
# run so a cancelled or timed-out job stops it; nested `python` calls exec the real interpreter directly. Its
# pid is in ATLAS_RUN_PID_FILE while the run lives: the job script's USR1 trap sends the checkpoint signal
# there (launch.preemption), never to the agent, which a USR1 kills before it forwards signals.
WRAPPER_SOURCE = """\
# Written by atlas-sweeps: records the exit code of each run `wandb agent` starts (the agent itself exits 0).
import json, os, signal, subprocess, sys
real = os.environ.get("ATLAS_REAL_PYTHON") or "python3"
log = os.environ.pop("ATLAS_EXIT_LOG", None)
pid_file = os.environ.pop("ATLAS_RUN_PID_FILE", None)
run_file = os.environ.pop("ATLAS_RUN_FILE", None)
if not log:
    os.execv(real, [real, *sys.argv[1:]])
if run_file:  # the run this task is on, for `atlas-sweeps status`: "<run id> <its --name=value arguments>"
    params = {}
    for arg in sys.argv[2:]:
        name, eq, value = arg.partition("=")
        if eq and name.lstrip("-"):
            try:
                params[name.lstrip("-")] = json.loads(value)
            except ValueError:
                params[name.lstrip("-")] = value
    text = json.dumps(params)
    try:
        with open(run_file + ".tmp", "w") as fh:
            fh.write(os.environ.get("WANDB_RUN_ID", "-") + " " + (text if len(text) <= 2000 else "{}") + "\\n")
        os.replace(run_file + ".tmp", run_file)
    except OSError:
        pass
child = subprocess.Popen([real, *sys.argv[1:]])
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(number, lambda signum, _frame: child.send_signal(signum))
if pid_file:
    with open(pid_file, "w") as fh:
        fh.write(f"{os.getpid()}\\n")
code = child.wait()
if pid_file:
    os.unlink(pid_file)
code = 128 - code if code < 0 else code
with open(log, "a") as fh:
    fh.write(f"{os.environ.get('WANDB_RUN_ID', '-')} {code}\\n")
sys.exit(code)
"""

# Called with the job script's exit code when it exits (``JobCommand.finish``): the agent's own failure wins;
# else the last failed run's exit code. Returns the job's exit code.
_FINISH_FUNCTION = """\
atlas_finish() {
  local code=$1 failed="" total=0
  if [ -n "${atlas_bin:-}" ] && [ -f "$atlas_bin/exit-codes" ]; then
    total=$(wc -l < "$atlas_bin/exit-codes")
    failed=$(awk '$2 != 0 {n++; c=$2} END {if (n) print n, c}' "$atlas_bin/exit-codes")
  fi
  [ -n "${atlas_bin:-}" ] && rm -rf "$atlas_bin"
  if [ -n "${atlas_gated:-}" ]; then return "$code"; fi  # the gate found nothing to run and said so
  if [ "$code" -eq 0 ] && [ -n "$failed" ]; then
    set -- $failed
    echo "atlas-sweeps: $1 of $total run(s) failed (last exit code $2); the job fails with it" >&2
    return "$2"
  fi
  echo "atlas-sweeps: wandb agent exited with $code after $total run(s)" >&2
  return "$code"
}"""


def agent_counts(runs: int, tasks: int) -> tuple[int, int]:
    """``(base, extra)``: task ``i`` runs ``base + (i < extra)`` runs, so the counts add up to ``runs``."""
    return divmod(max(runs, tasks), tasks)


class WandbBackend:
    """W&B sweeps; ``sweep_id`` is recorded as ``entity/project/id``, the path ``wandb agent`` takes."""

    name = "wandb"
    expands_runs = False  # W&B's sweep controller hands runs to the agents
    offline_runs = False

    def __init__(self, *, base_url: str | None = None, dry_run: bool = False) -> None:
        self.base_url = resolve_base_url(base_url)
        self.dry_run = dry_run
        self._default_entity: str | None = None

    # -- before anything is created ---------------------------------------------------------------
    def preflight(self, *, entity: str | None, project: str) -> None:
        """A missing or refused key, an unreachable server or an entity the key cannot use fails here, in
        seconds (one GraphQL query, no retries); ``--dry-run`` contacts nothing."""
        if self.dry_run:
            return
        viewer = check_viewer(client_for(self.base_url))
        self._default_entity = viewer.entity or viewer.username
        if entity and not viewer.can_use(entity):
            known = ", ".join(sorted({e for e in (viewer.username, viewer.entity, *viewer.teams) if e}))
            raise BackendError(f"W&B entity '{entity}' is not available to this API key on {self.base_url} "
                               f"(it can use: {known or 'none'})",
                               hint="fix 'entity' in the sweep file, --entity, the profile's [wandb] entity "
                                    "or WANDB_ENTITY")

    def remote_checks(self) -> tuple[str, ...]:
        """Bash lines: the cluster user has their own credentials for this server."""
        return cluster_credential_checks(self.base_url)

    def required_command(self, *, interpreter: str) -> str:
        return "wandb"

    def progress(self, sweeps: Sequence[SweepRecord]) -> dict[str, SweepProgress]:
        """Runs per state of each W&B sweep, one query per sweep, cached a few seconds (no wandb import)."""
        from atlas_sweeps.backends.wandb.progress import fetch_progress

        return fetch_progress(list(sweeps), base_url=self.base_url)

    # -- creating and stopping sweeps -------------------------------------------------------------
    def create(self, sweep: PlannedSweep, *, launch_id: str, entity: str | None, project: str,
               note: str = "") -> CreatedSweep:
        """Create the W&B sweep with the subtest's merged config (``wandb.sweep``)."""
        if self.dry_run:
            raise BackendError("internal: a dry run must not create sweeps")
        entity = entity or self._default_entity
        config = sweep_config(sweep, launch_id=launch_id, note=note)
        with wandb_environment(self.base_url), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            import wandb

            try:
                sweep_id = wandb.sweep(config, entity=entity, project=project,
                                       prior_runs=list(sweep.prior_runs) or None)
            except Exception as exc:  # wandb raises CommError and friends; all mean the same here
                detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise BackendError(f"W&B could not create sweep '{sweep.name}' in {entity or '(default)'}/"
                                   f"{project} on {self.base_url}: {detail}",
                                   hint="nothing was submitted; fix the cause and 'atlas-sweeps launch --resume' "
                                        "this launch") from None
            entity = entity or os.environ.get("WANDB_ENTITY") or "-"  # wandb.sweep resolved the default
        if not sweep_id:
            raise BackendError(f"W&B returned no id for sweep '{sweep.name}': {err.getvalue().strip()[-300:]}")
        path = f"{entity}/{project}/{sweep_id}"
        return CreatedSweep(sweep_id=path, url=f"{app_url(self.base_url)}/{entity}/{project}/sweeps/{sweep_id}")

    def stop(self, sweep_id: str) -> str | None:
        """Finish the sweep at W&B: running runs go on, no new ones start (what ``wandb sweep --stop`` does)."""
        from atlas_sweeps.backends.wandb.progress import SweepPath, query_sweep

        try:
            path = SweepPath.parse(sweep_id)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        client = client_for(self.base_url)
        node = query_sweep(client, path)
        if node is None:
            raise BackendError(f"W&B has no sweep {sweep_id} on {self.base_url}")
        if str(node.get("state") or "").upper() in ("FINISHED", "CANCELED", "CRASHED", "FAILED"):
            return f"W&B sweep {sweep_id} had already ended"
        client.execute(_STOP_MUTATION, {"id": node["id"], "state": "FINISHED", "entityName": path.entity,
                                        "projectName": path.project}, operation="UpsertSweep")
        return f"stopped W&B sweep {sweep_id}"

    def done_runs(self, sweeps: Sequence[PlannedSweep], *, entity: str | None, project: str) -> dict[str, dict[str, Any]]:
        """``--skip-done``: what earlier finished runs with each sweep's tags cover of its grid, by sweep name
        (``{"points": n, "run_ids": [...]}``; ``prior.py``), one paged query per tag set."""
        from atlas_sweeps.backends.wandb.prior import covered, fetch_finished_runs

        client = client_for(self.base_url)
        entity = entity or check_viewer(client).entity or None
        runs: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        out = {}
        for sweep in sweeps:
            tags = sweep.spec.tags
            if tags not in runs:
                runs[tags] = fetch_finished_runs(client, entity=entity, project=project, tags=tags)
            prior = covered(sweep.spec.config, tags, runs[tags])
            if prior.points:
                out[sweep.name] = {"points": prior.points, "run_ids": list(prior.run_ids)}
        return out

    def retry_round(self, launch: LaunchRecord, sweeps: Sequence[SweepRecord], jobs: Sequence[JobRecord], *,
                    profile: Profile, template: Template, only: str | None = None, code: str = "") -> WandbRetryPlan:
        """``retry``: the sweeps' failed runs at W&B, planned to run again as runs of the same sweeps (one query
        per sweep; ``retry.py``)."""
        from atlas_sweeps.backends.wandb.best import sweep_runs
        from atlas_sweeps.backends.wandb.retry import plan_retry

        client = client_for(self.base_url)
        runs = {s.name: sweep_runs(client, s.sweep_id) for s in sweeps
                if s.sweep_id and (only is None or s.name == only)}
        return plan_retry(launch, sweeps, jobs, runs, profile=profile, template=template, base_url=self.base_url,
                          only=only, code=code)

    def best_runs(self, sweeps: Sequence[SweepRecord], *, metrics: dict[str, tuple[str, str]]) -> dict[str, BackendBest]:
        """The best finished run of each W&B sweep by its metric (one query per sweep; ``best.py``)."""
        from atlas_sweeps.backends.wandb.best import fetch_best

        try:
            client = client_for(self.base_url)
        except BackendError as exc:
            return {s.name: BackendBest(why=f"unknown: {exc}") for s in sweeps if s.name in metrics}
        return fetch_best(client, sweeps, metrics=metrics)

    # -- what jobs run ---------------------------------------------------------------------------
    def job(self, sweep: PlannedSweep, created: CreatedSweep, *, layout: LaunchLayout,
            wrap: str | None) -> JobCommand:
        """``sweep.jobs`` array tasks, each one agent with its share of the runs, from rank 0 only."""
        tasks = max(1, sweep.jobs)
        base, extra = agent_counts(sweep.runs, tasks)
        wrapper = f"{layout.sweep_dir(sweep.name)}/{WRAPPER_NAME}"
        preamble = (
            'if [ "${SLURM_PROCID:-0}" != 0 ]; then exit 0; fi  # one agent per task: rank 0 only',
            'if [ -z "${WANDB_TAGS:-}" ]; then unset WANDB_TAGS; fi  # wandb rejects an empty tag list',
            'atlas_task=$(( ${ATLAS_TASK_OFFSET:-0} + ${SLURM_ARRAY_TASK_ID:-0} ))',
            f"atlas_count=$(( {base} + (atlas_task < {extra} ? 1 : 0) ))",
            "atlas_bin=$(mktemp -d \"${TMPDIR:-/tmp}/atlas-sweeps.XXXXXX\")",
            # The interpreter the agent's runs will find: inside the container when the profile wraps one.
            (f"atlas_python=$({wrap} sh -c 'command -v python || command -v python3' 2>/dev/null || true)" if wrap
             else "atlas_python=$(command -v python || command -v python3 || true)"),
            # Nothing left to run in the sweep (finished, stopped, paused, run cap reached): exit 0 now.
            *gate_lines(created.sweep_id, python=f'{wrap} "${{atlas_python:-python3}}"' if wrap
                        else '"${atlas_python:-python3}"'),
            'if [ -n "$atlas_python" ]; then',
            f"  {{ printf '#!%s\\n' \"$atlas_python\"; cat {shlex.quote(wrapper)}; }} > \"$atlas_bin/python\"",
            '  chmod +x "$atlas_bin/python"',
            '  export ATLAS_REAL_PYTHON="$atlas_python" ATLAS_EXIT_LOG="$atlas_bin/exit-codes" '
            'ATLAS_RUN_PID_FILE="$atlas_bin/run.pid" PATH="$atlas_bin:$PATH"',
            f'  export ATLAS_RUN_FILE={shlex.quote(layout.log_dir(sweep.name))}/'
            f'"${{SLURM_ARRAY_JOB_ID:-0}}_${{SLURM_ARRAY_TASK_ID:-0}}.{RUN_STREAM}"',
            "fi",
            f'echo "atlas-sweeps: task $atlas_task: wandb agent, up to $atlas_count run(s) of '
            f'{_dq(created.sweep_id)}" >&2',
        )
        agent = f'wandb agent --forward-signals --count "$atlas_count" {shlex.quote(created.sweep_id)}'
        command = f"{wrap} {agent}" if wrap else agent
        if sweep.packing.parallel > 1:  # P agents in the task, each with its share of the task's count
            lanes, command = agent_lanes_command(count_expr="atlas_count", agent=command.replace(
                '"$atlas_count"', '"$atlas_share"'), packing=sweep.packing, log_dir=layout.log_dir(sweep.name))
            preamble = (*preamble, *lanes)
        return JobCommand(tasks=tasks, throttle=tasks, preamble=preamble,
                          command=command,
                          env={"WANDB_BASE_URL": self.base_url, "WANDB_RESUME": "allow"},
                          files={wrapper: WRAPPER_SOURCE.encode()}, finish=_FINISH_FUNCTION,
                          run_pid='cat "$atlas_bin"/run*.pid 2>/dev/null || true')


_STOP_MUTATION = """
mutation UpsertSweep($id: ID, $state: String, $entityName: String, $projectName: String) {
    upsertSweep(input: {id: $id, state: $state, entityName: $entityName, projectName: $projectName}) {
        sweep { name }
    }
}
"""


def cluster_credential_checks(base_url: str) -> tuple[str, ...]:
    """Bash lines that ``emit problem`` unless the cluster user has their own credentials for ``base_url``
    (WANDB_API_KEY in the environment, or the netrc entry ``wandb login`` writes) in a private netrc file."""
    machine = shlex.quote(netrc_machine(base_url))
    missing = (f"no W&B credentials for {base_url} on the cluster for user $(id -un): run "
               f"'wandb login --host {base_url}' on the login node (after the profile's set-up "
               f"lines), or export WANDB_API_KEY in your shell start-up files there")
    return (
        EMIT_FUNCTION,
        'wandb_netrc="${NETRC:-$HOME/.netrc}"',
        'if [ -z "${WANDB_API_KEY:-}" ]; then',
        f"  if ! [ -r \"$wandb_netrc\" ] || ! awk -v m={machine} "
        "'{for (i = 1; i < NF; i++) if ($i == \"machine\" && $(i+1) == m) f = 1} END {exit !f}' "
        '"$wandb_netrc" 2>/dev/null; then',
        f'    emit problem "{_dq(missing)}"',
        '  elif [ -n "$(find "$wandb_netrc" -maxdepth 0 -perm /077 2>/dev/null)" ]; then',
        '    emit problem "$wandb_netrc is readable by others, so wandb ignores it: chmod 600 $wandb_netrc"',
        "  fi",
        "fi",
    )


def sweep_config(sweep: PlannedSweep, *, launch_id: str, note: str = "") -> dict[str, Any]:
    """The config W&B gets: the subtest's merged config, named after the sweep and launch, the launch's note
    as its description (before the file's own); a random sweep bounded only by ``--count`` gets it as
    ``run_cap``, so the server stops handing out runs too."""
    config = dict(sweep.spec.config)
    config.setdefault("name", f"{sweep.name} ({launch_id})")
    if note:
        own = config.get("description")
        config["description"] = f"{note}\n\n{own}" if own else note
    if config.get("method", "grid") != "grid" and config.get("run_cap") is None and sweep.runs:
        config["run_cap"] = sweep.runs
    return config


def _dq(text: str) -> str:
    """``text`` safe inside bash double quotes (``$(id -un)`` is the one expansion we mean to keep)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return out.replace("\\$(id -un)", "$(id -un)")


@contextlib.contextmanager
def wandb_environment(base_url: str) -> Iterator[None]:
    """The wandb client pointed at ``base_url``, quiet, with bounded retries; ``wandb.sweep`` writes
    WANDB_ENTITY/WANDB_PROJECT into the environment, so everything is restored afterwards."""
    saved = dict(os.environ)
    os.environ["WANDB_BASE_URL"] = base_url
    for name, value in (("WANDB_SILENT", "true"), ("WANDB_ERROR_REPORTING", "false"),
                        ("WANDB__GRAPHQL_RETRY_MAX", "2"), ("WANDB_HTTP_TIMEOUT", "20")):
        os.environ.setdefault(name, value)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)

"""Several runs per array task (pure): ``--runs-per-job K`` runs K runs one after another in each task,
``--parallel-per-job P`` runs P of them at once in one allocation, each pinned to its share of the job's GPUs.

A packed task runs P lanes side by side; lane ``l`` runs the task's runs ``first+l``, ``first+l+P``, ... one
after another. Each run has its own files in the sweep's log directory, beside the task's:

    <array>_<task>.r<run>.out / .err   the run's stdout and stderr
    <array>_<task>.r<run>.exit         ``R START`` while it runs, then ``CODE START END`` (epoch seconds)
                                       and ``L <its log's last line>``

A run whose exit record says 0 under any array id (a requeued or retried task) is skipped. The task exits
with the first failing run's code (0 when every run completed), so Slurm's own state stays meaningful.
``CUDA_VISIBLE_DEVICES`` as Slurm set it is split among the lanes (``n // P`` GPUs each) when the job has at
least P GPUs; with fewer, lane ``l`` shares GPU ``l % n``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from atlas_sweeps.errors import UsageError

RUN_EXIT_SUFFIX = ".r{run}.exit"
PREEMPTED_MARK = "P"  # a run's record after Slurm's USR1 interrupted it: it runs again after the requeue


@dataclass(frozen=True)
class Packing:
    """How many runs one array task runs (``runs_per_job``) and how many of them at once (``parallel``)."""

    runs_per_job: int = 1
    parallel: int = 1

    @property
    def packed(self) -> bool:
        return self.runs_per_job > 1

    def tasks(self, runs: int) -> int:
        """Array tasks for ``runs`` runs."""
        return -(-runs // self.runs_per_job) if runs > 0 else 0

    @property
    def waves(self) -> int:
        """Runs one lane runs one after another: what a task's time limit must hold."""
        return -(-self.runs_per_job // self.parallel)

    def runs_of(self, task: int, runs: int) -> range:
        """The run indexes task ``task`` (counted from the sweep's first task) runs."""
        first = task * self.runs_per_job
        return range(first, min(first + self.runs_per_job, runs))

    def to_options(self) -> dict[str, int]:
        return {"runs_per_job": self.runs_per_job, "parallel_per_job": self.parallel}


NO_PACKING = Packing()


def packing_of(*, runs_per_job: int | None, parallel_per_job: int | None, where: str = "") -> Packing:
    """The packing the user asked for: ``--parallel-per-job P`` alone packs P runs per task; ``K`` must be
    at least ``P``. Bad values are a ``UsageError`` naming ``where`` the value came from."""
    origin = f" ({where})" if where else ""
    for name, value in (("--runs-per-job", runs_per_job), ("--parallel-per-job", parallel_per_job)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UsageError(f"{name} must be a whole number of at least 1, not {value!r}{origin}",
                             hint=f"{name} 4, or leave it out for one run per job")
    parallel = parallel_per_job or 1
    runs = runs_per_job if runs_per_job is not None else parallel
    if parallel > runs:
        raise UsageError(f"--parallel-per-job {parallel} is more than --runs-per-job {runs}{origin}: a task "
                         f"cannot run more runs at once than it has",
                         hint=f"raise --runs-per-job to at least {parallel}, or leave it out")
    return Packing(runs_per_job=runs, parallel=parallel)


# Bash that waits for ``$pid`` to exit, its code in ``code``: a trapped signal (Slurm's USR1) interrupts
# ``wait``, which is entered again while the process lives.
_WAIT_PID = '    while :; do code=0; wait "$pid" || code=$?; kill -0 "$pid" 2>/dev/null || break; done'
# Bash that waits for every pid of ``pids`` and returns the first non-zero exit code (0 when all passed).
_WAIT_ALL = (
    '  for pid in "${pids[@]}"; do',
    _WAIT_PID,
    '    if [ "$worst" -eq 0 ]; then worst=$code; fi',
    "  done",
    '  return "$worst"',
    "}",
)


def _gpu_lines(parallel: int) -> list[str]:
    """Bash, inside a run's subshell: ``CUDA_VISIBLE_DEVICES`` narrowed to lane ``$lane``'s share."""
    return [
        '    if [ "${#atlas_pack_gpus[@]}" -gt 0 ]; then',
        f'      if [ "${{#atlas_pack_gpus[@]}}" -ge {parallel} ]; then',
        f'        atlas_per=$(( ${{#atlas_pack_gpus[@]}} / {parallel} ))',
        '        CUDA_VISIBLE_DEVICES=$(IFS=,; echo "${atlas_pack_gpus[*]:$(( lane * atlas_per )):$atlas_per}")',
        "      else",
        '        CUDA_VISIBLE_DEVICES=${atlas_pack_gpus[$(( lane % ${#atlas_pack_gpus[@]} ))]}',
        "      fi",
        "      export CUDA_VISIBLE_DEVICES",
        "    fi",
    ]


def packed_command(*, per_run: tuple[str, ...], command: str, runs: int, packing: Packing,
                   log_dir: str) -> tuple[tuple[str, ...], str]:
    """The preamble and command of a packed task: ``per_run`` (bash that reads run ``$task``'s argument list
    into ``argv``) and ``command`` (which runs it) are run once per run, in a subshell with its own logs."""
    k, p, log = packing.runs_per_job, packing.parallel, shlex.quote(log_dir)
    preamble = [
        f"# --- packing: {k} run(s) per task, {p} at once",
        "atlas_pack_task=$(( ${ATLAS_TASK_OFFSET:-0} + ${SLURM_ARRAY_TASK_ID:-0} ))",
        f"atlas_pack_first=$(( atlas_pack_task * {k} ))",
        f"atlas_pack_end=$(( atlas_pack_first + {k} < {runs} ? atlas_pack_first + {k} : {runs} ))",
        f"atlas_pack_log={log}",
        'atlas_pack_id="${SLURM_ARRAY_JOB_ID:-0}_${SLURM_ARRAY_TASK_ID:-0}"',
        'IFS=, read -r -a atlas_pack_gpus <<< "${CUDA_VISIBLE_DEVICES:-}"',
        "atlas_pack_stop=0",
        "atlas_pack_run() {  # RUN LANE: one run with its own log files and exit record",
        '  local run=$1 lane=$2 base rec code=0 pid start',
        '  base="$atlas_pack_log/$atlas_pack_id.r$run"; rec="$base.exit"',
        '  if grep -qs "^0\\( \\|$\\)" -- "$atlas_pack_log"/*_*.r"$run".exit; then',
        '    echo "atlas-sweeps: run $run completed before: skipped" >&2',
        "    printf '0\\n' > \"$rec\"; return 0  # this array's record says so too",
        "  fi",
        '  start=$(date +%s); printf "R %s\\n" "$start" > "$rec"',
        '  echo "atlas-sweeps: run $run started (lane $lane)" >&2',
        "  (",
        "    task=$run",
        "    export ATLAS_RUN=$run",
        *_gpu_lines(p),
        *(f"    {line}" for line in per_run),
        '    if [ "${#argv[@]}" -eq 0 ]; then echo "atlas-sweeps: run $run has no argument list" >&2; exit 127; fi',
        f"    exec {command}",
        '  ) > "$base.out" 2> "$base.err" &',
        "  pid=$!",
        _WAIT_PID[2:],
        # Slurm's USR1 came while it ran (preemption, time limit): it checkpointed and the task requeues, so
        # it is not done whatever its code: "P START", and it runs again, as the same run, after the requeue.
        f'  if (( atlas_pack_stop )); then printf "{PREEMPTED_MARK} %s\\n" "$start" > "$rec"; '
        'echo "atlas-sweeps: run $run interrupted (code $code): it runs again after the requeue" >&2; return 0; fi',
        # The record: its code and times, then its log's last line (what status shows once it ended).
        '  { printf "%s %s %s\\n" "$code" "$start" "$(date +%s)"',
        """    printf 'L %s\\n' "$(tail -c 4096 -- "$base.out" 2>/dev/null | tr '\\r' '\\n' """
        """| grep -v '^[[:space:]]*$' | tail -n 1 | head -c 300)"; } > "$rec\"""",
        '  echo "atlas-sweeps: run $run exited $code" >&2',
        "  # A failed run's last lines also go to the task's .err, where status finds why the task failed.",
        '  if [ "$code" -ne 0 ]; then tail -n 20 -- "$base.err" 2>/dev/null | sed "s/^/[run $run] /" >&2 || true; fi',
        '  return "$code"',
        "}",
        "atlas_pack_lane() {  # LANE: its runs one after another; returns the first failure's code",
        "  local lane=$1 run code worst=0",
        "  trap 'atlas_pack_stop=1' USR1  # Slurm's signal reaches the runs: no new run starts after it",
        f"  for (( run = atlas_pack_first + lane; run < atlas_pack_end && ! atlas_pack_stop; run += {p} )); do",
        '    code=0; atlas_pack_run "$run" "$lane" || code=$?',
        '    if [ "$worst" -eq 0 ]; then worst=$code; fi',
        "  done",
        '  return "$worst"',
        "}",
        "atlas_pack_main() {  # the lanes side by side; the task fails when a run failed",
        "  local lane pid code worst=0 pids=()",
        "  trap 'atlas_pack_stop=1' USR1  # lives on while the lanes' runs checkpoint",
        f"  for (( lane = 0; lane < {p}; lane++ )); do atlas_pack_lane \"$lane\" & pids+=($!); done",
        *_WAIT_ALL,
        "# --- end of packing",
    ]
    return tuple(preamble), "atlas_pack_main"


def agent_lanes_command(*, count_expr: str, agent: str, packing: Packing, log_dir: str) -> tuple[tuple[str, ...], str]:
    """W&B: ``packing.parallel`` agents in one task, each with its share of ``count_expr`` runs (``agent``
    takes the share as ``$atlas_share``), pinned like packed runs, logging to ``<array>_<task>.a<lane>.out``
    and ``.err``; the task fails when an agent did."""
    p, log = packing.parallel, shlex.quote(log_dir)
    preamble = [
        f"# --- packing: {p} agents per task",
        'IFS=, read -r -a atlas_pack_gpus <<< "${CUDA_VISIBLE_DEVICES:-}"',
        f"atlas_pack_log={log}",
        'atlas_pack_id="${SLURM_ARRAY_JOB_ID:-0}_${SLURM_ARRAY_TASK_ID:-0}"',
        "atlas_pack_main() {",
        f"  local lane pid code worst=0 pids=() total=$(( {count_expr} ))",
        f"  for (( lane = 0; lane < {p}; lane++ )); do",
        f"    atlas_share=$(( total / {p} + (lane < total % {p} ? 1 : 0) ))",
        '    if [ "$atlas_share" -eq 0 ]; then continue; fi',
        "    (",
        *_gpu_lines(p),
        # each agent's run writes its own pid file, so Slurm's USR1 reaches every lane's run
        '      if [ -n "${ATLAS_RUN_PID_FILE:-}" ]; then export ATLAS_RUN_PID_FILE="${ATLAS_RUN_PID_FILE%.pid}.$lane.pid"; fi',
        f"      exec {agent}",
        '    ) > "$atlas_pack_log/$atlas_pack_id.a$lane.out" 2> "$atlas_pack_log/$atlas_pack_id.a$lane.err" &',
        "    pids+=($!)",
        "  done",
        *_WAIT_ALL,
        "# --- end of packing",
    ]
    return tuple(preamble), "atlas_pack_main"


def run_exit_file(log_dir: str, *, job_id: str, task: int, run: int) -> str:
    """Where run ``run`` of task ``job_id``_``task`` records its exit code."""
    return f"{log_dir}/{job_id}_{task}" + RUN_EXIT_SUFFIX.format(run=run)


def run_log_file(output_path: str, *, run: int) -> str:
    """The run's own log beside its task's: ``X/123_4.out`` → ``X/123_4.r<run>.out`` (also for ``.err``)."""
    stem, dot, ext = output_path.rpartition(".")
    return f"{stem}.r{run}.{ext}" if dot else f"{output_path}.r{run}"


__all__ = ["NO_PACKING", "Packing", "agent_lanes_command", "packed_command", "packing_of", "run_exit_file",
           "run_log_file"]

"""Preemption and time limits that do not lose runs (pure): the ``#SBATCH`` lines (``--signal=B:USR1@grace``,
``--requeue``, ``--open-mode=append``) and the bash of the job script that runs the program in the background,
passes Slurm's SIGUSR1 on to it as its checkpoint signal, waits for it to exit (bounded by the grace) and
requeues the task (``scontrol requeue``) unless it was requeued ``max_requeues`` times already. On restart
the same run continues: ``run_identity_lines`` give each run a stable ``ATLAS_RUN_ID``/``WANDB_RUN_ID``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atlas_sweeps.config.profile import SlurmOptions

DEFAULT_GRACE = 60
DEFAULT_SIGNAL = "USR1"
DEFAULT_MAX_REQUEUES = 3
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Preemption:
    """What a job does at its time limit or when preempted: ``grace`` seconds before the limit Slurm sends the
    batch shell SIGUSR1, the run gets ``signal`` and the task requeues itself, at most ``max_requeues`` times.
    ``time_limit`` (seconds, None when unknown) leaves the signal out when it would come in the first half."""

    requeue: bool = True
    grace: int = DEFAULT_GRACE
    signal: str = DEFAULT_SIGNAL
    max_requeues: int = DEFAULT_MAX_REQUEUES
    time_limit: int | None = None

    @classmethod
    def of(cls, slurm: SlurmOptions) -> Preemption:
        """The profile's ``[slurm]`` options (requeue, signal_grace, checkpoint_signal, max_requeues, time)."""
        return cls(requeue=slurm.requeue is not False,
                   grace=DEFAULT_GRACE if slurm.signal_grace is None else slurm.signal_grace,
                   signal=slurm.checkpoint_signal or DEFAULT_SIGNAL,
                   max_requeues=DEFAULT_MAX_REQUEUES if slurm.max_requeues is None else slurm.max_requeues,
                   time_limit=time_limit_seconds(slurm.time) if slurm.time else None)

    @property
    def signals(self) -> bool:
        """Whether the job asks for the signal: not when it would arrive in the first half of the time limit
        (a 1-minute job with a 60 s grace would be signalled as it starts, and loop)."""
        return self.requeue and (self.time_limit is None or self.time_limit > 2 * self.grace)

    @property
    def wait_bound(self) -> int:
        """Seconds the script waits for the run to exit after the signal: the grace less time to requeue."""
        return max(5, self.grace - 10)

    def directives(self) -> tuple[str, ...]:
        if not self.requeue:
            return ()
        signal = (f"--signal=B:USR1@{self.grace}",) if self.signals else ()
        return (*signal, "--requeue", "--open-mode=append")


def time_limit_seconds(text: str) -> int | None:
    """Seconds of an sbatch ``--time``: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``; None for
    UNLIMITED or what does not parse (a bare number is minutes, unlike squeue's durations)."""
    text = text.strip()
    days, _, rest = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = rest.split(":")
    if not (days.isdigit() and all(p.isdigit() for p in parts)) or len(parts) > 3:
        return None
    numbers = [int(p) for p in parts]
    if "-" in text:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    elif len(numbers) == 1:
        hours, minutes, seconds = 0, numbers[0], 0
    elif len(numbers) == 2:
        hours, minutes, seconds = 0, numbers[0], numbers[1]
    else:
        hours, minutes, seconds = numbers
    return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds


def run_id(launch_id: str, sweep: str) -> str:
    """The stable part of a run's id, ``<launch>-<sweep>``: the run index is appended on the compute node.
    W&B run ids take letters, digits, ``-`` and ``_``; a sweep name with others gets a short hash too."""
    slug = _SLUG.sub("_", sweep)[:32]
    if slug != sweep:
        slug += "-" + hashlib.sha256(sweep.encode()).hexdigest()[:6]
    return f"{launch_id}-{slug}"


def run_identity_lines(prefix: str, *, index: str = "$task") -> tuple[str, ...]:
    """Bash lines that give the run ``index`` its id across requeues (``ATLAS_RUN_ID``, ``WANDB_RUN_ID``),
    ``WANDB_RESUME=allow`` and ``ATLAS_RESTARTS`` (how often the task was requeued: > 0 means resumed)."""
    return (f'export ATLAS_RUN_ID="{prefix}-{index}" WANDB_RESUME=allow ATLAS_RESTARTS="${{SLURM_RESTART_COUNT:-0}}"',
            'export WANDB_RUN_ID="$ATLAS_RUN_ID"',
            'if [ "$ATLAS_RESTARTS" -gt 0 ]; then echo "atlas-sweeps: requeued $ATLAS_RESTARTS time(s): '
            'run $ATLAS_RUN_ID resumes" >&2; fi')


def trap_lines(policy: Preemption, *, run_pid: str = "") -> tuple[str, ...]:
    """Bash functions and the USR1 trap, set before the run starts. ``run_pid`` is a bash expression for the
    pids of the runs in progress, one a line (a backend whose runs are children of agents), empty when none is; without
    it the run is the background command itself (``$atlas_run``) and its process group gets the signal."""
    if not policy.requeue:
        return ()
    sig, most, bound = policy.signal, policy.max_requeues, policy.wait_bound
    if run_pid:
        current = f'atlas_current() {{ {run_pid}; }}'
        # one pid per line: several agents in one task (--parallel-per-job) each have a run in progress
        send = f'atlas_signal_run() {{ local pid; for pid in $(atlas_current); do kill -s {sig} "$pid" 2>/dev/null || true; done; }}'
    else:
        current = 'atlas_current() { if [ -n "$atlas_run" ] && kill -0 "$atlas_run" 2>/dev/null; then echo "$atlas_run"; fi; }'
        send = (f'atlas_signal_run() {{ if [ -n "$atlas_run" ]; then kill -s {sig} -- -"$atlas_run" 2>/dev/null || '
                f'kill -s {sig} "$atlas_run" 2>/dev/null || true; fi; }}')
    return (
        "atlas_run='' atlas_preempted='' atlas_requeued=''",
        current,
        send,
        "atlas_task_id() { if [ -n \"${SLURM_ARRAY_JOB_ID:-}\" ]; then "
        "echo \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; else echo \"${SLURM_JOB_ID:-}\"; fi; }",
        # Requeue this task (the EXIT trap then leaves no exit code behind) or say why not and fail.
        "atlas_requeue() {",
        "  local id; id=$(atlas_task_id)",
        f'  if [ "${{SLURM_RESTART_COUNT:-0}}" -ge {most} ]; then',
        f'    echo "atlas-sweeps: not requeued: task $id was requeued ${{SLURM_RESTART_COUNT:-0}} time(s) already '
        f'(max_requeues = {most}); it fails here: raise [slurm] max_requeues or time, or retry it" >&2',
        "    return 1",
        "  fi",
        f'  echo "atlas-sweeps: requeueing task $id (requeue $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )) of at most {most}); '
        'its run continues as ${ATLAS_RUN_ID:-${WANDB_RUN_ID:-the same run}}" >&2',
        "  atlas_requeued=1",
        '  rm -f -- "$atlas_exit_file"',
        '  if scontrol requeue "$id"; then exit 0; fi',
        "  atlas_requeued=''",
        '  echo "atlas-sweeps: scontrol requeue $id failed: the task ends here" >&2',
        "  return 1",
        "}",
        # Slurm's SIGUSR1 to the batch shell (B:): the run checkpoints; atlas_wait requeues once it exited.
        "atlas_on_usr1() {",
        '  if [ -n "$atlas_preempted" ]; then return 0; fi',
        "  atlas_preempted=$SECONDS",
        f'  echo "atlas-sweeps: SIGUSR1 from Slurm (time limit in {policy.grace} s, or preemption): '
        f'SIG{sig} to the run to checkpoint" >&2',
        '  if [ -z "$atlas_run" ]; then atlas_requeue || exit 1; fi  # nothing started yet',
        "  atlas_signal_run",
        "}",
        "trap atlas_on_usr1 USR1",
        # Waits for the background command; a trap interrupts `wait`, which is entered again, so the exit
        # code is the command's. After the signal: the run gets `bound` seconds to exit, then the requeue.
        "atlas_wait() {",
        "  local code",
        "  while :; do",
        '    code=0; wait "$atlas_run" || code=$?',
        '    if ! kill -0 "$atlas_run" 2>/dev/null; then break; fi',
        '    if [ -n "$atlas_preempted" ]; then',
        f'      while [ -n "$(atlas_current)" ] && [ $(( SECONDS - atlas_preempted )) -lt {bound} ]; do sleep 1; done',
        '      if [ -n "$(atlas_current)" ]; then',
        f'        echo "atlas-sweeps: the run did not exit within {bound} s of SIG{sig}" >&2',
        '      elif ! kill -0 "$atlas_run" 2>/dev/null; then',
        '        code=0; wait "$atlas_run" || code=$?  # the run was the command: its exit code',
        "      fi",
        "      break",
        "    fi",
        "  done",
        '  if [ -n "$atlas_preempted" ]; then',
        '    atlas_requeue || { if [ "$code" -eq 0 ]; then code=1; fi; }',
        '    if kill -0 "$atlas_run" 2>/dev/null; then  # an agent still up after its run: stop it',
        '      kill -s TERM -- -"$atlas_run" 2>/dev/null || true; code=0; wait "$atlas_run" || code=$?',
        '      if [ "$code" -eq 0 ]; then code=1; fi',
        "    fi",
        "  fi",
        '  return "$code"',
        "}",
    )


def run_lines(policy: Preemption, command: str) -> str:
    """``command`` run in the background in its own process group (``set -m``) and waited for, when the
    task requeues itself; as it is otherwise."""
    if not policy.requeue:
        return command
    return "\n".join(("set -m", f"{command} &", "atlas_run=$!", "set +m", "atlas_wait"))


def exit_guard(*, finish: bool = False) -> str:
    """The first words of the EXIT trap: a requeued task leaves no exit code (its restart writes one); the
    backend's ``atlas_finish`` only cleans up, its verdict on the interrupted attempt unsaid."""
    cleanup = 'atlas_finish "$code" >/dev/null 2>&1; ' if finish else ""
    return f'if [ -n "${{atlas_requeued:-}}" ]; then {cleanup}rm -f -- "$atlas_exit_file"; exit 0; fi; '

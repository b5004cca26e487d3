"""The embedded ``local`` backend: no service. Runs were expanded at planning time; each becomes one array
task that reads its argument list from a NUL-separated file and ``exec``s it, so no shell re-parses a value
and the task's exit code is the program's. Runs log to W&B offline (``atlas-sweeps sync`` uploads them)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from atlas_sweeps.backends.base import BackendBest, CreatedSweep, JobCommand, SweepProgress
from atlas_sweeps.config.commandline import ARGS_JSON_FILE_TOKEN, args_json, deferred_env_names
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.packing import packed_command
from atlas_sweeps.launch.plan import PlannedSweep
from atlas_sweeps.launch.preemption import run_id, run_identity_lines

if TYPE_CHECKING:
    from atlas_sweeps.state.store import SweepRecord


def encode_argv(argv: tuple[str, ...]) -> bytes:
    """An argument list as the NUL-terminated bytes ``mapfile -d ''`` reads back verbatim."""
    for arg in argv:
        if "\0" in arg:
            raise ValueError(f"argument contains a NUL byte: {arg!r}")
    return b"".join(arg.encode() + b"\0" for arg in argv)


class LocalBackend:
    """Sweeps are Slurm job arrays; the sweep id is ``<launch>/<sweep name>``. Runs log to W&B offline unless
    the profile says the compute nodes are online (``[wandb] online``)."""

    name = "local"
    expands_runs = True

    def __init__(self, *, online: bool = False) -> None:
        self.online = online
        self.offline_runs = not online

    def preflight(self, *, entity: str | None, project: str) -> None:
        return None

    def remote_checks(self) -> tuple[str, ...]:
        return ()

    def required_command(self, *, interpreter: str) -> str:
        return interpreter

    def progress(self, sweeps: Sequence[SweepRecord]) -> dict[str, SweepProgress]:
        return {}

    def stop(self, sweep_id: str) -> str | None:
        return None  # nothing runs outside Slurm: cancelling the arrays is all

    def done_runs(self, sweeps: Sequence[PlannedSweep], *, entity: str | None, project: str) -> dict[str, dict[str, Any]]:
        return {}  # runs are expanded here: --skip-done reads the state database (launch/done_runs.py)

    def best_runs(self, sweeps: Sequence[SweepRecord], *, metrics: dict[str, tuple[str, str]]) -> dict[str, BackendBest]:
        return {}  # the runs' summaries are offline on the cluster: report reads them in its remote call

    def create(self, sweep: PlannedSweep, *, launch_id: str, entity: str | None, project: str,
               note: str = "") -> CreatedSweep:
        return CreatedSweep(sweep_id=f"{launch_id}/{sweep.name}")

    def job(self, sweep: PlannedSweep, created: CreatedSweep, *, layout: LaunchLayout,
            wrap: str | None) -> JobCommand:
        args_dir = layout.args_dir(sweep.name)
        files = {f"{args_dir}/{i}.args": encode_argv(argv) for i, argv in enumerate(sweep.run_argv)}
        preamble = [
            'task=$(( ${ATLAS_TASK_OFFSET:-0} + SLURM_ARRAY_TASK_ID ))',
            *run_identity_lines(run_id(layout.launch_id, sweep.name)),  # one id per run, across requeues
            f"mapfile -d '' -t argv < {shlex.quote(args_dir)}/\"$task\".args",
        ]
        # Tokens resolved here, on the compute node, by pattern substitution: no value is re-parsed by a shell.
        if any(ARGS_JSON_FILE_TOKEN in arg for argv in sweep.run_argv for arg in argv):
            files.update({f"{args_dir}/{i}.json": args_json(run).encode() for i, run in enumerate(sweep.run_params)})
            preamble.append(f'argv=("${{argv[@]//"{ARGS_JSON_FILE_TOKEN}"/{shlex.quote(args_dir)}/"$task".json}}")')
        for name in deferred_env_names([arg for argv in sweep.run_argv for arg in argv]):
            preamble.append(f'argv=("${{argv[@]//"@@ATLAS_ENV:{name}@@"/"${{{name}-{name}}}"}}")')
        preamble.append('echo "atlas-sweeps: run $task: ${argv[*]}" >&2')
        command = f'{wrap} "${{argv[@]}}"' if wrap else '"${argv[@]}"'
        if sweep.packing.packed:  # the per-run lines (all but the task line) run once per run of the task
            preamble, command = packed_command(per_run=tuple(preamble[1:]), command=command, runs=sweep.runs,
                                               packing=sweep.packing, log_dir=layout.log_dir(sweep.name))
        return JobCommand(tasks=sweep.tasks, throttle=max(1, sweep.jobs), preamble=tuple(preamble), command=command,
                          files=files, env={} if self.online else {"WANDB_MODE": "offline"})

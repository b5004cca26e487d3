"""``report``'s pure part: durations, failures grouped by cause with parameters, GPU-hours against the
estimate (0 for a profile with gpus = 0), the next commands (quoted), JSON and Markdown."""

from __future__ import annotations

import time

import pytest

from atlas_sweeps.config.profile import SlurmOptions
from atlas_sweeps.errors import UsageError
from atlas_sweeps.slurm.causes import Diagnosis
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.slurm.usage import TaskUsage
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status.model import build_launch_status
from atlas_sweeps.status.report import build_report, parse_since, report_document, report_markdown
from atlas_sweeps.status.report_probe import ReportFacts


def test_since_durations() -> None:
    assert parse_since("24h") == 86400 and parse_since("90m") == 5400 and parse_since("2w") == 14 * 86400
    assert parse_since(" 1.5d ") == 1.5 * 86400
    with pytest.raises(UsageError, match="--since '24 hours' is not a duration"):
        parse_since("24 hours")


def test_gpus_zero_is_zero_gpu_hours_and_gres_wins() -> None:
    assert SlurmOptions(gpus=0).gpus_per_job == 0
    assert SlurmOptions().gpus_per_job == 1  # nothing said of GPUs: the estimate is in job hours
    assert SlurmOptions(gpus=0, gres="gpu:a100:2").gpus_per_job == 2


SWEEP_CONFIG = {"metric": {"name": "val/acc", "goal": "maximize"}}
JOB = JobRecord(launch_id="k3x9q2", sweep_name="grid_iso", chunk=0, job_id="12", job_name="x", array_spec="0-3",
                task_offset=0, task_count=4, output="/l/%A_%a.out", error="/l/%A_%a.err", script="/s",
                submitted=time.time())
SWEEP = SweepRecord(launch_id="k3x9q2", name="grid_iso", tags=("iso",), runs=4, jobs=1, config=SWEEP_CONFIG,
                    log_dir="/l", run_params=tuple({"bs": 64 * (i + 1), "seed": 1} for i in range(4)))
# sacct: two GPUs for an hour (run 0), half an hour (run 1), none for run 2 (a CPU node), and run 3 never ran.
FACTS = ReportFacts(accounting=True, usage={("12", 0): TaskUsage(3600, 2), ("12", 1): TaskUsage(1800, 2),
                                            ("12", 2): TaskUsage(1800, 0), ("12", 3): TaskUsage(0, 2)},
                    best={"k3x9q2/grid_iso": {"key": "k3x9q2/grid_iso", "best": {"run": 0, "run_id": "ab12",
                                                                                "value": 0.93},
                                              "logged": 1, "named": 1, "runs": 1}})


def _status(*, gpus: object = 2, tags: tuple[str, ...] = ("iso", "it's")):
    rec = LaunchRecord(id="k3x9q2", created=time.time(), config_path="/p/grid.yml", config_text="", cluster="c",
                       backend="local", nodes=1, remote_dir="/r", snapshot="", status="submitted", total_runs=4,
                       total_hours=8.0, note="bs=128 | lr*2?", options={"config_name": "grid.yml", "test_time": 1.0,
                                                                          **({"gpus_per_job": gpus} if gpus else {})})
    runs = tuple({"bs": 64 * (i + 1), "seed": 1} for i in range(4))
    sweep = SweepRecord(launch_id="k3x9q2", name="grid_iso", tags=tags, runs=4, jobs=1, config={}, log_dir="/l",
                        run_params=runs)
    job = JobRecord(launch_id="k3x9q2", sweep_name="grid_iso", chunk=0, job_id="12", job_name="x", array_spec="0-3",
                    task_offset=0, task_count=4, output="/l/%A_%a.out", error="/l/%A_%a.err", script="/s",
                    submitted=time.time())
    states = {("12", 0): TaskState("12", 0, "COMPLETED", elapsed=3600, exit_code=0, source="sacct"),
              ("12", 1): TaskState("12", 1, "FAILED", elapsed=1800, exit_code=1, source="sacct"),
              ("12", 2): TaskState("12", 2, "OUT_OF_MEMORY", elapsed=1800, source="sacct"),
              ("12", 3): TaskState("12", 3, "FAILED", elapsed=0, exit_code=1, source="sacct")}
    why = {("12", 1): Diagnosis("error", "ValueError: bad bs"), ("12", 2): Diagnosis("oom"),
           ("12", 3): Diagnosis("error", "KeyError: 'x'")}
    return build_launch_status(rec, [sweep], [job], states=states, log_lines={}, polled=time.time(), accounting=True,
                               diagnoses=why)


def test_failures_are_grouped_by_cause_with_their_parameters_and_gpu_hours_counted() -> None:
    report = build_report(_status(), retryable=True, facts=FACTS, reached=True, sweeps=[SWEEP], jobs=[JOB])
    sweep = report.sweeps[0]
    assert [(g.cause, [r.run for r in g.runs]) for g in sweep.failures] == [("oom", [2]), ("error", [1, 3])]
    assert sweep.failures[1].runs[0].params == {"bs": 128, "seed": 1} and sweep.failures[1].runs[0].label == "bs=128"
    # used: sacct's elapsed x allocated GPUs (3 GPU-hours), not the recorded 2 GPUs x 2 job-hours
    assert report.gpus_per_job == 2 and report.gpu_hours == pytest.approx(3.0) and report.estimate == 8.0
    assert report.job_hours == pytest.approx(2.0) and sweep.gpu_hours == pytest.approx(3.0)
    assert sweep.best is not None and (sweep.best.run, sweep.best.value, sweep.best.label) == (0, 0.93, "bs=64")
    assert report.commands == ("atlas-sweeps retry k3x9q2 --dry-run", "atlas-sweeps tail 12_2 --err", "atlas-sweeps clean --tag iso",
                               "atlas-sweeps clean --tag 'it'\"'\"'s'")
    doc = report_document(report)
    assert doc["sweeps"][0]["failures"][1]["runs"][1] == {"job": "12_3", "run": 3, "params": {"bs": 256, "seed": 1},
                                                          "error": "KeyError: 'x'"}
    assert doc["note"] == "bs=128 | lr*2?" and doc["gpu_hours"] == 3.0 and doc["gpu_hours_unknown"] is None
    assert doc["sweeps"][0]["best"] == {"metric": "val/acc", "goal": "maximize", "value": 0.93, "run": 0,
                                        "run_id": "ab12", "params": {"bs": 64, "seed": 1}, "logged": 1, "why": None,
                                        "unread": 0}
    text = report_markdown([report])
    assert "- best: val/acc (maximize): 0.93, run 0 bs=64 \\[ab12\\] (of 1 that logged it)" in text


def test_without_accounting_or_a_reached_cluster_the_gpu_hours_used_are_unknown_not_zero() -> None:
    none = build_report(_status(), facts=ReportFacts(accounting=False), reached=True, sweeps=[SWEEP], jobs=[JOB])
    assert none.gpu_hours is None and none.usage_why == "the cluster keeps no accounting (sacct)"
    assert none.sweeps[0].gpu_hours is None and report_document(none)["gpu_hours"] is None
    assert "- GPU-hours: unknown used (the cluster keeps no accounting (sacct)) of 8 estimated" in report_markdown([none])
    away = build_report(_status(), reached=False, error="connection refused", sweeps=[SWEEP], jobs=[JOB])
    assert away.gpu_hours is None and away.usage_why == "the cluster was not reached: connection refused"
    assert away.sweeps[0].best is not None and away.sweeps[0].best.why == "unknown: the cluster was not reached"
    assert build_report(_status(), facts=FACTS, reached=True, jobs=[JOB]).sweeps[0].best is None  # no metric known


def test_the_best_run_says_why_it_is_unknown() -> None:
    nothing = ReportFacts(accounting=True, best={"k3x9q2/grid_iso": {"best": None, "logged": 0, "named": 0}})
    best = build_report(_status(), facts=nothing, reached=True, sweeps=[SWEEP], jobs=[JOB]).sweeps[0].best
    assert best is not None and best.why == "no offline W&B run found in the logs of the 1 completed runs"
    unlogged = ReportFacts(accounting=True, best={"k3x9q2/grid_iso": {"best": None, "logged": 0, "named": 1}})
    best = build_report(_status(), facts=unlogged, reached=True, sweeps=[SWEEP], jobs=[JOB]).sweeps[0].best
    assert best is not None and best.text() == "val/acc (maximize): no completed run logged val/acc"
    cut = ReportFacts(accounting=True, best={"k3x9q2/grid_iso": {"best": None, "logged": 0, "named": 0, "unread": 1}})
    best = build_report(_status(), facts=cut, reached=True, sweeps=[SWEEP], jobs=[JOB]).sweeps[0].best
    assert best is not None and best.why == "unknown: the byte budget of one call left 1 runs unread"


def test_an_old_launch_without_recorded_gpus_uses_its_estimates_and_markdown_is_escaped() -> None:
    report = build_report(_status(gpus=None), facts=FACTS, reached=True, jobs=[JOB])
    assert report.gpus_per_job == 2.0  # 8 estimated hours / (4 runs x 1 h)
    text = report_markdown([report])
    assert text.startswith("## Launch k3x9q2: grid.yml on c (")
    assert "> bs=128 \\| lr\\*2?" in text and "**out of memory** (1)" in text
    assert "| 12\\_1 | 1 | bs=128 | ValueError: bad bs |" in text
    assert "- GPU-hours: 3.00 used of 8 estimated (2 per job); 2.00 job-hours ran" in text
    assert "```console\n$ atlas-sweeps tail 12_2 --err\n" in text

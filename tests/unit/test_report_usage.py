"""What ``report``'s one remote call reads: sacct's elapsed time and allocated GPUs (``AllocTRES``), and the
best run of an offline sweep from the runs' ``.wandb`` files (a real one written by wandb offline, and
records framed across LevelDB blocks), with the script's output parsed back."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.remote.protocol import EMIT_FUNCTION
from atlas_sweeps.slurm.usage import TaskUsage, gpus_allocated, parse_usage
from atlas_sweeps.status import offline_best
from atlas_sweeps.status.report_probe import (
    BestQuery,
    ReportQuery,
    SweepMetric,
    parse_report,
    report_script,
    sweep_metric,
)

# sacct -X --parsable2 --noheader --format=JobID,State,Elapsed,AllocTRES (Slurm 22.05, a GPU cluster)
SACCT = """\
41_0|COMPLETED|01:00:00|billing=8,cpu=8,gres/gpu:a100=2,gres/gpu=2,mem=64G,node=1
41_1|FAILED|00:30:00|billing=8,cpu=8,gres/gpu:a100=2,mem=64G,node=1
41_2|TIMEOUT|1-00:00:00|billing=1,cpu=1,mem=200M,node=1
41_[3-5%2]|PENDING|00:00:00|
99_0|COMPLETED|00:10:00|gres/gpu=4
"""


def test_sacct_usage_is_elapsed_times_the_gpus_allocated() -> None:
    usage = parse_usage(SACCT, job_ids={"41"})
    assert usage == {("41", 0): TaskUsage(3600, 2), ("41", 1): TaskUsage(1800, 2), ("41", 2): TaskUsage(86400, 0)}
    assert sum(u.gpu_seconds for u in usage.values()) / 3600 == 3.0
    assert gpus_allocated("billing=1,cpu=1,mem=200M,node=1") == 0 and gpus_allocated("") == 0
    assert gpus_allocated("gres/gpu:a100=2,gres/gpu:v100=1") == 3  # typed only: summed
    assert gpus_allocated("cpu=4,gres/gpumem=40G,gres/gpu=1") == 1


def test_sweep_metric_defaults_to_minimize() -> None:
    assert sweep_metric({"metric": {"name": "loss"}}) == SweepMetric("loss", "minimize")
    assert sweep_metric({"metric": {"name": "acc", "goal": "Maximize"}}) == SweepMetric("acc", "maximize")
    assert sweep_metric({}) is None and sweep_metric({"metric": "loss"}) is None


def _field(number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            if n < 0x80:
                return out + bytes([n])
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _summary(**values: object) -> bytes:
    items = b"".join(_field(1, _field(2, k.encode()) + _field(16, json.dumps(v).encode())) for k, v in values.items())
    return _field(3, items)


def _framed(records: list[bytes]) -> bytes:
    """LevelDB log framing as wandb writes it: a 7-byte header, 32 KiB blocks, records split across them."""
    out = bytearray(b":W&B\xe1\xbe\x00")
    for rec in records:
        first = True
        while True:
            left = offline_best.BLOCK - len(out) % offline_best.BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            piece, rec = rec[:left - 7], rec[left - 7:]
            kind = (1 if not rec else 2) if first else (4 if not rec else 3)
            out += struct.pack("<IHB", 0, len(piece), kind) + piece
            first = False
            if not rec:
                break
    return bytes(out)


def test_the_last_summary_value_wins_across_blocks_and_from_a_block_aligned_tail() -> None:
    filler = _field(2, b"x" * 50000)  # a history record longer than a block
    data = _framed([_summary(loss=2.0), filler, _summary(loss=0.5, acc=0.9), filler, _summary(acc=0.95)])
    assert offline_best.summary_value(data, "loss") == 0.5 and offline_best.summary_value(data, "acc") == 0.95
    assert offline_best.summary_value(data, "missing") is None
    # read from a later block only: the record begun before it is skipped, the later ones are read
    assert offline_best.summary_value(data, "acc", start=offline_best.BLOCK * 2) == 0.95
    assert offline_best.summary_value(data[:-5], "acc") == 0.9  # a record still being written is left out


def test_the_run_directory_named_in_an_err_log_with_any_run_id() -> None:
    err = (b"wandb: Run data is saved locally in /r/wandb/L/s/wandb/offline-run-20261203_131358-L-my_sweep.v2-1\n"
           b"wandb: Find logs at: ./wandb/offline-run-20261203_131358-L-my_sweep.v2-1/logs\n")
    assert offline_best.run_dir(err) == ("/r/wandb/L/s/wandb/offline-run-20261203_131358-L-my_sweep.v2-1",
                                         "L-my_sweep.v2-1")
    assert offline_best.run_dir(b"no wandb here") is None


def test_best_of_a_real_offline_run_named_in_a_tasks_err_log(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "false"}
    runs = []
    for i, losses in enumerate(([1.0, 0.4], [0.9, 0.2, 0.3], [])):
        program = ("import wandb\nr = wandb.init(project='p')\n"
                   + "".join(f"wandb.log({{'val': {{'loss': {v}}}}})\n" for v in losses) + "r.finish()\n")
        done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        err = tmp_path / f"{i}.err"
        err.write_text(done.stderr)
        runs.append([i, str(err)])
    runs.append([3, str(tmp_path / "missing.err")])
    answer = offline_best.best_of({"key": "L/s", "metric": "val.loss", "goal": "minimize", "runs": runs})
    assert answer["best"]["run"] == 1 and answer["best"]["value"] == 0.3  # the last value logged, not the least
    assert answer["logged"] == 2 and answer["named"] == 3 and answer["runs"] == 4 and answer["unread"] == 0
    # One call reads a bounded number of bytes: past the budget the runs are counted unread, not read.
    spent = offline_best._spent[0]
    try:
        offline_best._spent[0] = offline_best.BUDGET_BYTES
        cut = offline_best.best_of({"key": "L/s", "metric": "val.loss", "goal": "minimize", "runs": runs})
    finally:
        offline_best._spent[0] = spent
    assert cut["best"] is None and cut["unread"] == 4 and cut["named"] == 0
    # The same through the remote script's bash and interpreter, parsed back.
    query = ReportQuery(job_ids=(), since=0, best=(BestQuery(key="L/s", metric=SweepMetric("val.loss", "maximize"),
                                                             runs=tuple((r, p) for r, p in runs)),),
                        interpreter=sys.executable)
    out = subprocess.run(["bash", "-s"], input=report_script(query), capture_output=True, text=True, timeout=60)
    facts = parse_report(out.stdout, job_ids=())
    assert facts.errors == () and facts.best["L/s"]["best"]["run"] == 0  # maximize: 0.4 beats 0.3


def test_the_script_asks_sacct_once_for_every_array_and_says_when_there_is_no_accounting(tmp_path: Path) -> None:
    script = report_script(ReportQuery(job_ids=("41", "42", "x;rm"), since=1_700_000_000))
    assert script.count("sacct -X") == 1 and '"$rids"' in script and "rids=41,42\n" in script
    fake = tmp_path / "sacct"
    fake.write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    facts = parse_report(out.stdout, job_ids=("41",))
    assert facts.accounting is False and facts.errors == ()
    assert parse_report("", job_ids=()).errors == ("the report script stopped before its end",)
    assert EMIT_FUNCTION in script

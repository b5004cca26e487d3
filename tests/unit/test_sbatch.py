"""sbatch command lines, array splitting and the parsers of what Slurm prints."""

from __future__ import annotations

import shlex

import pytest

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.slurm.sbatch import (
    ArrayChunk,
    Submission,
    parse_max_array_size,
    parse_sbatch_parsable,
    split_array,
)


def test_parsable_output_forms() -> None:
    assert parse_sbatch_parsable("12345\n") == "12345"
    assert parse_sbatch_parsable("12345;cluster1\n") == "12345"
    assert parse_sbatch_parsable("job_submit: note\n678\n") == "678"
    with pytest.raises(RemoteError):
        parse_sbatch_parsable("")
    with pytest.raises(RemoteError):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_max_array_size_from_scontrol() -> None:
    assert parse_max_array_size("MaxArraySize            = 1001\nMaxJobCount = 10000\n") == 1001
    assert parse_max_array_size("MaxArraySize = 40001") == 40001
    assert parse_max_array_size("") == 1001


def test_split_array_respects_max_array_size_and_throttle() -> None:
    assert split_array(6, max_array_size=1001, throttle=2) == [ArrayChunk(index=0, offset=0, count=6, throttle=2)]
    chunks = split_array(2500, max_array_size=1001, throttle=8)
    assert [(c.offset, c.count) for c in chunks] == [(0, 1000), (1000, 1000), (2000, 500)]
    assert all(c.count - 1 < 1001 for c in chunks)
    assert sum(c.count for c in chunks) == 2500
    assert split_array(0, max_array_size=1001, throttle=1) == []


def test_array_spec_only_throttles_when_needed() -> None:
    assert ArrayChunk(index=0, offset=0, count=6, throttle=2).array_spec == "0-5%2"
    assert ArrayChunk(index=0, offset=0, count=3, throttle=8).array_spec == "0-2"


def test_submission_command_quotes_paths_and_passes_offset() -> None:
    sub = Submission(key="k", job_name="atlas-l1-s", script_path="/h/it's here/job.sbatch",
                     chunk=ArrayChunk(index=1, offset=1000, count=5, throttle=2), output="/h/logs/%A_%a.out",
                     error="/h/logs/%A_%a.err", chdir="/h/snap")
    argv = shlex.split(sub.command())
    assert argv == sub.argv()
    assert argv[0:2] == ["sbatch", "--parsable"]
    assert "--export=ALL,ATLAS_TASK_OFFSET=1000" in argv
    assert argv[-1] == "/h/it's here/job.sbatch"
    assert "--array=0-4%2" in argv and "--job-name=atlas-l1-s" in argv

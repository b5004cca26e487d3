"""Why a task did not complete, from its state, exit code and the tail of its .err log (literal texts)."""

from __future__ import annotations

from atlas_sweeps.slurm.causes import (
    CANCELLED,
    ERROR,
    NODE_FAIL,
    OOM,
    PREEMPTED,
    TIMEOUT,
    Diagnosis,
    diagnose,
    last_error_line,
)

TRACEBACK = """atlas-sweeps: run 3: python train.py --lr=0.1
wandb: Tracking run with wandb version 0.19.1
Traceback (most recent call last):
  File "/home/u/snap/train.py", line 12, in <module>
    main()
  File "/home/u/snap/train.py", line 9, in main
    raise ValueError(f"lr too large: {args.lr}")
ValueError: lr too large: 0.1
wandb: You can sync this run to the cloud by running:
"""
CHAINED = """Traceback (most recent call last):
  File "a.py", line 2, in <module>
    {}["x"]
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 4, in <module>
    raise RuntimeError("no x")
RuntimeError: no x
"""
CUDA_OOM = """Traceback (most recent call last):
  File "train.py", line 40, in <module>
    out = model(batch)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB \
of which 1.06 GiB is free.
"""
TIME_LIMIT = "tick 118\nslurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-12-03T08:41:02 DUE TO TIME LIMIT ***\n"
CANCEL = "slurmstepd: error: *** JOB 15 ON vm CANCELLED AT 2026-12-03T08:41:02 ***\n"
CGROUP_OOM = "slurmstepd: error: Detected 1 oom_kill event in StepId=12.batch. Some of the step tasks have been OOM Killed.\n"


def test_a_python_traceback_is_a_program_error_with_its_exception_line() -> None:
    assert diagnose("FAILED", exit_code=1, err_tail=TRACEBACK) == Diagnosis(ERROR, "ValueError: lr too large: 0.1")


def test_a_chained_traceback_gives_the_last_exception() -> None:
    assert last_error_line(CHAINED) == "RuntimeError: no x"


def test_cuda_oom_text_under_failed_is_out_of_memory() -> None:
    found = diagnose("FAILED", exit_code=1, err_tail=CUDA_OOM)
    assert found is not None and found.cause == OOM and found.error.startswith("torch.OutOfMemoryError: CUDA out of")
    assert found.words == "out of memory"


def test_slurm_states_say_the_cause_by_themselves() -> None:
    assert diagnose("OUT_OF_MEMORY", exit_code=0) == Diagnosis(OOM)
    assert diagnose("FAILED", exit_code=0, err_tail=CGROUP_OOM).cause == OOM  # type: ignore[union-attr]
    assert diagnose("TIMEOUT", exit_code=0, err_tail=TIME_LIMIT).cause == TIMEOUT  # type: ignore[union-attr]
    assert diagnose("NODE_FAIL", exit_code=None) == Diagnosis(NODE_FAIL)
    assert diagnose("PREEMPTED", exit_code=None) == Diagnosis(PREEMPTED)
    assert diagnose("CANCELLED", exit_code=None, err_tail=CANCEL).cause == CANCELLED  # type: ignore[union-attr]


def test_the_time_limit_line_is_the_error_line_and_turns_a_cancel_or_an_unknown_into_a_timeout() -> None:
    expected = "slurmstepd: error: *** JOB 12 ON vm CANCELLED AT 2026-12-03T08:41:02 DUE TO TIME LIMIT ***"
    assert diagnose("TIMEOUT", exit_code=0, err_tail=TIME_LIMIT) == Diagnosis(TIMEOUT, expected)
    assert diagnose("CANCELLED", exit_code=None, err_tail=TIME_LIMIT) == Diagnosis(TIMEOUT, expected)
    assert diagnose("UNKNOWN", exit_code=None, err_tail=TIME_LIMIT) == Diagnosis(TIMEOUT, expected)


def test_completed_active_and_silent_unknown_tasks_have_no_cause() -> None:
    assert diagnose("COMPLETED", exit_code=0, err_tail=TRACEBACK) is None
    assert diagnose("RUNNING", exit_code=None, err_tail=TIME_LIMIT) is None
    assert diagnose("PENDING", exit_code=None) is None
    assert diagnose("UNKNOWN", exit_code=None) is None
    assert diagnose("FAILED", exit_code=3) == Diagnosis(ERROR, "")


def test_error_line_without_a_traceback_and_bounds() -> None:
    assert last_error_line("loading\nfatal: cannot open data.bin\nbye\n") == "fatal: cannot open data.bin"
    assert last_error_line("just output\n") == "just output"
    assert last_error_line("atlas-sweeps: run 0: python x.py\n") == ""
    assert len(last_error_line("Error " + "x" * 1000)) == 300

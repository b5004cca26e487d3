"""slurm/: squeue/sacct parsing, array ids, state mapping and the merge, on output recorded from Slurm 22.05."""

from __future__ import annotations

import time

import pytest

from atlas_sweeps.slurm.array_ids import parse_array_id
from atlas_sweeps.slurm.durations import format_duration, parse_duration
from atlas_sweeps.slurm.exit_codes import parse_exit_code
from atlas_sweeps.slurm.merge import merge_tasks
from atlas_sweeps.slurm.sacct import accounting_missing, parse_sacct, sacct_command
from atlas_sweeps.slurm.squeue import parse_squeue, squeue_command
from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, category, normalize_state
from atlas_sweeps.slurm.task import TaskState

# squeue --array --states=all --noheader -O ArrayJobID:|,ArrayTaskID:|,JobID:|,State:|,Reason:|,NodeList:|,
# TimeUsed:|,TimeLimit:|,StartTime:|,EndTime:|,RestartCnt:|,exit_code (sandbox, slurm-wlm 22.05.8)
SQUEUE = """\
2|2|2|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0
2|0|4|RUNNING|None|vm|0:03|10:00|2026-11-28T07:06:58|2026-11-28T07:16:58|0|0
2|1|5|COMPLETED|None|vm|0:04|10:00|2026-11-28T07:06:58|2026-11-28T07:07:02|0|0
3|0|6|FAILED|NonZeroExitCode|vm|0:01|10:00|2026-11-28T07:06:58|2026-11-28T07:06:59|0|768
20|1-5%1|20|CANCELLED|JobArrayTaskLimit||0:00|UNLIMITED|2026-11-28T07:08:36|2026-11-28T07:08:36|0|0
99|0|99|RUNNING|None|vm|1-02:03:04|2-00:00:00|2026-11-27T05:00:00|N/A|0|0
"""

# sacct -X --parsable2 --noheader -j 2,3,20 --format=JobID,JobIDRaw,State,ExitCode,Elapsed,Timelimit,Start,End,
# NodeList,Reason
SACCT = """\
2_0|4|COMPLETED|0:0|00:00:04|00:10:00|2026-11-28T07:06:58|2026-11-28T07:07:02|vm|None
2_2|2|COMPLETED|0:0|00:00:02|00:10:00|2026-11-28T07:07:02|2026-11-28T07:07:04|vm|JobArrayTaskLimit
3_0|6|FAILED|3:0|00:00:01|00:10:00|2026-11-28T07:06:58|2026-11-28T07:06:59|vm|None
3_1|7|CANCELLED by 1003|0:0|00:00:00|00:10:00|None|2026-11-28T07:08:36|None assigned|None
20_[2-3,5%1]|20|CANCELLED by 1003|0:0|00:00:00|UNLIMITED|None|2026-11-28T07:08:36|None assigned|None
22_0|22|OUT_OF_MEMORY|0:125|00:01:00||2026-11-28T07:08:36|2026-11-28T07:09:36|vm|None
"""


@pytest.mark.parametrize(("text", "job", "tasks"), [
    ("123", "123", None), ("123_4", "123", (4,)), ("123_[5-9%2]", "123", (5, 6, 7, 8, 9)),
    ("123_[1,3,7-8]", "123", (1, 3, 7, 8)), ("7_[0-6:3]", "7", (0, 3, 6)), (" 42_0 ", "42", (0,)),
])
def test_array_ids_as_users_and_slurm_write_them(text: str, job: str, tasks: tuple[int, ...] | None) -> None:
    parsed = parse_array_id(text)
    assert (parsed.job_id, parsed.tasks) == (job, tasks)


@pytest.mark.parametrize("text", ["", "abc", "12_x", "12-3", "_4", "12_4;rm -rf /"])
def test_anything_else_is_not_a_job_id(text: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm job id"):
        parse_array_id(text)


def test_squeue_lines_become_one_state_per_task() -> None:
    tasks = {(t.job_id, t.task): t for t in parse_squeue(SQUEUE, job_ids=["2", "3", "20", "99"])}
    assert tasks[("2", 2)].state == "PENDING" and tasks[("2", 2)].reason == "JobArrayTaskLimit"
    running = tasks[("2", 0)]
    assert (running.state, running.node, running.elapsed, running.time_limit, running.exit_code, running.end) == \
        ("RUNNING", "vm", 3, 600, None, "")
    assert tasks[("2", 1)].exit_code == 0 and tasks[("2", 1)].reason == ""
    assert tasks[("3", 0)].state == "FAILED" and tasks[("3", 0)].exit_code == 3  # wait status 768
    assert [tasks[("20", t)].state for t in range(1, 6)] == ["CANCELLED"] * 5  # "1-5%1" expanded
    assert tasks[("99", 0)].elapsed == 86400 + 2 * 3600 + 3 * 60 + 4 and tasks[("99", 0)].time_limit == 2 * 86400


def test_squeue_lines_of_other_arrays_and_noise_are_dropped() -> None:
    text = SQUEUE + "slurm_load_jobs error: something\n\n"
    assert {t.job_id for t in parse_squeue(text, job_ids=["3"])} == {"3"}


def test_sacct_gives_final_states_and_exit_codes() -> None:
    tasks = {(t.job_id, t.task): t for t in parse_sacct(SACCT, job_ids=["2", "3", "20", "22"])}
    assert tasks[("2", 2)].state == "COMPLETED" and tasks[("2", 2)].reason == ""
    assert tasks[("3", 0)].exit_code == 3 and tasks[("3", 0)].reason == ""
    assert tasks[("3", 1)].state == "CANCELLED" and tasks[("3", 1)].node == ""
    assert sorted(t for j, t in tasks if j == "20") == [2, 3, 5]
    assert tasks[("22", 0)].state == "OUT_OF_MEMORY" and tasks[("22", 0)].exit_code == 128 + 125
    assert tasks[("22", 0)].time_limit is None


@pytest.mark.parametrize(("state", "cat"), [
    ("PENDING", PENDING), ("RUNNING", RUNNING), ("COMPLETING", RUNNING), ("COMPLETED", DONE),
    ("CANCELLED by 1003", FAILED), ("TIMEOUT", FAILED), ("OOM", FAILED), ("NODE_FAIL", FAILED),
])
def test_slurm_states_map_to_progress_categories(state: str, cat: str) -> None:
    assert category(normalize_state(state)) == cat


def test_durations_and_exit_codes() -> None:
    assert parse_duration("UNLIMITED") is None and parse_duration("") is None
    assert parse_duration("0:05") == 5 and parse_duration("1:00:00") == 3600
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"
    assert format_duration(90061) == "1-01:01:01" and format_duration(None) == ""
    assert parse_exit_code("0:9") == 137 and parse_exit_code("2:0") == 2
    assert parse_exit_code("9", wait_status=True) == 137 and parse_exit_code("x") is None


def test_commands_quote_names_and_never_use_sacct_array() -> None:
    cmd = squeue_command(["atlas-abc-x", "atlas-abc-y;rm"])
    assert "--array" in cmd and "--noheader" in cmd and "'--name=" not in cmd
    assert "--name='atlas-abc-x,atlas-abc-y;rm'" in cmd
    sacct = sacct_command(ids_expr='"$need"', start_expr='"$start"')
    assert "-X --parsable2 --noheader" in sacct and "--array" not in sacct and "--starttime \"$start\"" in sacct


def test_accounting_disabled_is_recognised() -> None:
    assert accounting_missing("sacct: error: Slurm accounting storage is disabled\n")
    assert not accounting_missing("sacct: error: Problem talking to the database: Connection refused")


def test_merge_prefers_squeue_then_sacct_then_last_seen() -> None:
    live = [TaskState("2", 0, "RUNNING"), TaskState("2", 1, "FAILED", exit_code=1)]
    acct = [TaskState("2", 1, "FAILED", exit_code=7, source="sacct"),
            TaskState("2", 2, "COMPLETED", exit_code=0, source="sacct")]
    seen = [TaskState("2", 3, "RUNNING", node="vm"), TaskState("2", 4, "COMPLETED", exit_code=0, source="sacct"),
            TaskState("2", 0, "PENDING")]
    merged = merge_tasks(arrays={"2": 6}, squeue=live, sacct=acct, last_seen=seen)
    assert merged[("2", 0)].state == "RUNNING"  # live beats what was seen before
    assert merged[("2", 1)].exit_code == 7  # sacct fills in the exit code
    assert merged[("2", 2)].source == "sacct"
    assert (merged[("2", 3)].state, merged[("2", 3)].source) == ("RUNNING", "last-seen")  # said so
    assert merged[("2", 4)].source == "sacct"  # a final state stays final
    assert merged[("2", 5)].state == "UNKNOWN"


# -- exit codes that agree with their states (issue 10) ---------------------------------------------------------
# Recorded on the sandbox (22.05.8): array 45 = 0-3, all four running at once, task 0 exits 1. The array's
# original record (JobID 45 = ArrayJobID) is the task started last (slurmctld's job_array_post_sched splits
# the others off it) and carries its own exit code; squeue 22.05 prints raw wait statuses.
SQUEUE_MIXED = """\
45|3|45|COMPLETED|None|vm|0:05|10:00|2026-12-02T18:36:04|2026-12-02T18:36:09|0|0
45|2|48|COMPLETED|None|vm|0:04|10:00|2026-12-02T18:36:04|2026-12-02T18:36:08|0|0
45|1|47|COMPLETED|None|vm|0:03|10:00|2026-12-02T18:36:04|2026-12-02T18:36:07|0|0
45|0|46|FAILED|NonZeroExitCode|vm|0:02|10:00|2026-12-02T18:36:04|2026-12-02T18:36:06|0|256
"""
# The same array as squeue 23.02+ prints it (exit:signal, as measured with 24.11.5; an unset code is empty).
SQUEUE_MIXED_24 = SQUEUE_MIXED.replace("|0\n", "|0:0\n").replace("|256\n", "|1:0\n")
# Issue 10's report: the original record shown as a task that COMPLETED, with the array's failing code.
SQUEUE_CONTRADICTION = "537|0|537|COMPLETED|None|vm|0:09|10:00|2026-12-01T10:00:00|2026-12-01T10:00:09|0|256\n"


@pytest.mark.parametrize("text", [SQUEUE_MIXED, SQUEUE_MIXED_24])
def test_squeue_exit_codes_of_22_05_and_24_11_are_read_alike(text: str) -> None:
    tasks = {t.task: (t.state, t.exit_code) for t in parse_squeue(text, job_ids=["45"])}
    assert tasks == {0: ("FAILED", 1), 1: ("COMPLETED", 0), 2: ("COMPLETED", 0), 3: ("COMPLETED", 0)}


@pytest.mark.parametrize(("text", "wait_status", "code"), [
    ("0", True, 0), ("256", True, 1), ("768", True, 3), ("9", True, 137), ("15", True, 143),  # 22.05 squeue
    ("0:0", True, 0), ("1:0", True, 1), ("3:0", True, 3), ("0:9", True, 137),  # 23.02+ squeue
    ("0:0", False, 0), ("3:0", False, 3), ("0:15", False, 143),  # sacct, scontrol
    ("", True, None), ("", False, None), ("N/A", True, None),
])
def test_exit_codes_in_both_forms(text: str, wait_status: bool, code: int | None) -> None:
    assert parse_exit_code(text, wait_status=wait_status) == code


def test_a_state_and_its_exit_code_never_contradict() -> None:
    (task,) = parse_squeue(SQUEUE_CONTRADICTION, job_ids=["537"])
    assert (task.state, task.exit_code) == ("COMPLETED", 0)  # Slurm says COMPLETED only for exit 0
    failed_zero = "9_0|9|FAILED|0:0|00:00:01|00:10:00|x|y|vm|None\n"
    assert [t.exit_code for t in parse_sacct(failed_zero)] == [None]  # failed, code unknown: not "0"
    # squeue's terminal state with sacct's exit code for the same task: still consistent.
    merged = merge_tasks(arrays={"537": 1}, squeue=[TaskState("537", 0, "COMPLETED", exit_code=0)],
                         sacct=[TaskState("537", 0, "COMPLETED", exit_code=1, source="sacct")], last_seen=[])
    assert merged[("537", 0)].exit_code == 0
    for states in (parse_squeue(SQUEUE, job_ids=None), parse_sacct(SACCT), parse_squeue(SQUEUE_MIXED_24)):
        for t in states:
            assert t.state != "COMPLETED" or t.exit_code == 0
            assert t.state != "FAILED" or t.exit_code != 0


# -- a cancelled pending task (issue 10) ----------------------------------------------------------------------
# Recorded on the sandbox: array 1 = 0-5%1, task 3 cancelled while pending (scancel 1_3). squeue no longer
# lists task 3; sacct has no record of it, and its pending-remainder record lags behind task 2, split off it.
SQUEUE_AFTER_CANCEL = """\
1|1|10|COMPLETED|None|vm|0:21|10:00|2026-12-02T18:33:07|2026-12-02T18:33:28|0|0
1|4|1|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0
1|5|1|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0
1|2|27|RUNNING|None|vm|0:06|10:00|2026-12-02T18:33:29|N/A|0|0
"""
SACCT_AFTER_CANCEL = """\
1_0|2|FAILED|1:0|00:00:21|00:10:00|2026-12-02T18:32:45|2026-12-02T18:33:06|vm|NonZeroExitCode
1_1|10|COMPLETED|0:0|00:00:21|00:10:00|2026-12-02T18:33:07|2026-12-02T18:33:28|vm|None
1_2|27|RUNNING|0:0|00:00:06|00:10:00|2026-12-02T18:33:29|Unknown|vm|None
1_[2,4-5%1]|1|PENDING|0:0|00:00:00|00:10:00|Unknown|Unknown|None assigned|JobArrayTaskLimit
"""


def test_sacct_record_of_one_task_beats_the_lagging_pending_remainder() -> None:
    tasks = {t.task: t.state for t in parse_sacct(SACCT_AFTER_CANCEL, job_ids=["1"])}
    assert tasks == {0: "FAILED", 1: "COMPLETED", 2: "RUNNING", 4: "PENDING", 5: "PENDING"}  # no task 3


def test_a_recorded_cancel_ends_a_task_that_left_squeue_without_a_sacct_record() -> None:
    cancelled = TaskState("1", 3, "CANCELLED", source="scancel")
    squeue, sacct = parse_squeue(SQUEUE_AFTER_CANCEL, job_ids=["1"]), parse_sacct(SACCT_AFTER_CANCEL, job_ids=["1"])
    merged = merge_tasks(arrays={"1": 6}, squeue=squeue, sacct=sacct,
                         last_seen=[cancelled, TaskState("1", 0, "RUNNING")])
    assert (merged[("1", 3)].state, merged[("1", 3)].source) == ("CANCELLED", "scancel")
    assert merged[("1", 0)].state == "FAILED" and merged[("1", 4)].state == "PENDING"
    # The stale remainder record right after the cancel ("1_[1-5%1] PENDING") does not undo it ...
    stale = parse_sacct("1_[1-5%1]|1|PENDING|0:0|00:00:00|00:10:00|Unknown|Unknown|None assigned|None\n")
    assert merge_tasks(arrays={"1": 6}, squeue=[], sacct=stale, last_seen=[cancelled])[("1", 3)].state == "CANCELLED"
    # ... but a final state from Slurm does: the task had finished before scancel reached it.
    done = TaskState("1", 3, "COMPLETED", exit_code=0, source="sacct")
    assert merge_tasks(arrays={"1": 6}, squeue=[], sacct=[done], last_seen=[cancelled])[("1", 3)].state == "COMPLETED"
    live = TaskState("1", 3, "RUNNING")
    assert merge_tasks(arrays={"1": 6}, squeue=[live], sacct=[], last_seen=[cancelled])[("1", 3)].state == "RUNNING"


# -- job ids with absurd ranges (issue 10) --------------------------------------------------------------------
def test_task_ranges_are_bounded_and_never_listed_to_be_checked() -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match="beyond the largest Slurm allows"):
        parse_array_id("1_[0-9999999999]")
    with pytest.raises(ValueError, match="beyond"):
        parse_array_id("1_" + "9" * 5000)
    with pytest.raises(ValueError, match="more tasks than the largest Slurm array"):
        parse_array_id("1_[" + ",".join(["0-4000000"] * 3) + "]")
    big = parse_array_id("1_[0-4000000:2]")  # the largest array is fine, and stays a range
    assert big.max_task == 4000000 and big.task is None and big.spans == (range(0, 4000001, 2),)
    assert time.perf_counter() - start < 0.5
    assert parse_array_id("1_7").task == 7 and parse_array_id("1_[7-7]").task == 7
    with pytest.raises(ValueError, match="not a task index"):
        parse_array_id("1_[3-x]")


# Recorded on the sandbox: array 323 (0-3) before its first task started. sacct lists the array's original
# record without a task id; parsed alone it stands for task 0, so it must never override task 0's own record.
SACCT_PLAIN_META = "323|323|PENDING|0:0|00:00:00|00:10:00|Unknown|Unknown|None assigned|None\n"


def test_a_record_without_task_id_never_overrides_a_tasks_own_record() -> None:
    assert [(t.task, t.state) for t in parse_sacct(SACCT_PLAIN_META, job_ids=["323"])] == [(0, "PENDING")]
    # Issue 10's report: task 0 COMPLETED 0:0 in its own record, the original record (JobIDRaw 537) with the
    # failed task's code listed after it. Task 0 stays COMPLETED with exit code 0, in sacct and merged.
    text = ("537_0|538|COMPLETED|0:0|00:00:09|00:10:00|x|y|vm|None\n"
            "537|537|FAILED|1:0|00:00:09|00:10:00|x|y|vm|NonZeroExitCode\n")
    (task0,) = parse_sacct(text, job_ids=["537"])
    assert (task0.state, task0.exit_code) == ("COMPLETED", 0)
    live = parse_squeue("537|0|538|COMPLETED|None|vm|0:09|10:00|x|y|0|0\n", job_ids=["537"])
    merged = merge_tasks(arrays={"537": 4}, squeue=live, sacct=parse_sacct(text), last_seen=[])
    assert (merged[("537", 0)].state, merged[("537", 0)].exit_code) == ("COMPLETED", 0)


# -- exit codes that belong to their task (issue 10; CI failure of 2026-12-02) ---------------------------------
# Recorded on the sandbox (22.05): array 112 = 0-3, task 0 exited 3 (split off as job 113); squeue's lines.
SQUEUE_FIRST_TASK_FAILED = """\
112|3|112|COMPLETED|None|vm|0:02|10:00|x|y|0|0
112|2|115|COMPLETED|None|vm|0:02|10:00|x|y|0|0
112|1|114|COMPLETED|None|vm|0:02|10:00|x|y|0|0
112|0|113|FAILED|NonZeroExitCode|vm|0:02|10:00|x|y|0|768
"""


def test_an_array_wide_sacct_record_never_gives_a_task_its_exit_code() -> None:
    live = parse_squeue(SQUEUE_FIRST_TASK_FAILED, job_ids=["112"])
    # While the original record's task id is not yet written, sacct lists it without one ("112"), with the
    # code of the task it ran (3, completed). Read as task 0 it made task 0's exit code "0", then unknown.
    lagging = parse_sacct("112|112|COMPLETED|0:0|00:00:02|00:10:00|x|y|vm|None\n"
                          "112_[1-2]|112|PENDING|0:0|00:00:00|00:10:00|x|y|vm|None\n", job_ids=["112"])
    assert all(t.exit_code is None for t in lagging)
    merged = merge_tasks(arrays={"112": 4}, squeue=live, sacct=lagging, last_seen=[])
    assert [(merged[("112", t)].state, merged[("112", t)].exit_code) for t in range(4)] == \
        [("FAILED", 3), ("COMPLETED", 0), ("COMPLETED", 0), ("COMPLETED", 0)]


def test_squeues_original_record_gives_no_exit_code_but_completed_and_the_exit_file_does() -> None:
    # The original record (JobID = array id) carries the array's largest exit code, not its task's.
    (master,) = parse_squeue("40|3|40|FAILED|NonZeroExitCode|vm|0:02|10:00|x|y|0|1280\n", job_ids=["40"])
    assert (master.state, master.exit_code) == ("FAILED", None)
    (done,) = parse_squeue("40|3|40|COMPLETED|None|vm|0:02|10:00|x|y|0|1280\n", job_ids=["40"])
    assert done.exit_code == 0
    merged = merge_tasks(arrays={"40": 4}, squeue=[master], sacct=[], last_seen=[], exit_codes={("40", 3): 2})
    assert (merged[("40", 3)].state, merged[("40", 3)].exit_code, merged[("40", 3)].source) == ("FAILED", 2, "squeue")


def test_without_accounting_tasks_that_left_squeue_end_with_the_code_their_script_wrote() -> None:
    seen = [TaskState("5", t, "RUNNING") for t in range(4)]
    merged = merge_tasks(arrays={"5": 4}, squeue=[], sacct=[], last_seen=seen, accounting=False, queried={"5"},
                         exit_codes={("5", 0): 0, ("5", 1): 3, ("5", 2): 0})
    assert [(merged[("5", t)].state, merged[("5", t)].exit_code, merged[("5", t)].source) for t in range(3)] == \
        [("COMPLETED", 0, "exit-file"), ("FAILED", 3, "exit-file"), ("COMPLETED", 0, "exit-file")]
    # Task 3 left squeue without writing one (killed): it has ended, how is not known.
    assert (merged[("5", 3)].state, merged[("5", 3)].source) == ("UNKNOWN", "last-seen")
    assert "last seen RUNNING" in merged[("5", 3)].reason
    # With accounting, absence from squeue and sacct is only lag: the task stays as last seen.
    lagging = merge_tasks(arrays={"5": 4}, squeue=[], sacct=[], last_seen=seen, accounting=True, queried={"5"})
    assert {t.state for t in lagging.values()} == {"RUNNING"}

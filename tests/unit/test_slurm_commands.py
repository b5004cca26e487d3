"""slurm/: the one state table and the bash/awk pieces generated from it, fields read by name, and the
command builders of scancel, scontrol, sbatch --test-only and tail's sacct lookup."""

from __future__ import annotations

import shlex
import subprocess

from atlas_sweeps.slurm._records import records
from atlas_sweeps.slurm.merge import merge_tasks
from atlas_sweeps.slurm.sacct import SACCT_FIELDS, sacct_final_command
from atlas_sweeps.slurm.sbatch import DEFAULT_MAX_ARRAY_SIZE, max_array_tasks, sbatch_test_only_command
from atlas_sweeps.slurm.scancel import scancel_command
from atlas_sweeps.slurm.scontrol import show_config_command, show_job_command
from atlas_sweeps.slurm.squeue import SQUEUE_FIELDS, column
from atlas_sweeps.slurm.states import (
    ACTIVE_STATES,
    PENDING,
    RUNNING,
    STATES,
    TERMINAL_STATES,
    case_pattern,
    is_terminal,
)
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import TaskSeen
from atlas_sweeps.status.poll import _LOGGED_AWK, _NEED_AWK
from atlas_sweeps.status.tail import tail_script


def test_active_and_terminal_states_partition_the_table() -> None:
    assert set(ACTIVE_STATES) | set(TERMINAL_STATES) == set(STATES)
    assert not set(ACTIVE_STATES) & set(TERMINAL_STATES)
    assert all(is_terminal(s) for s in TERMINAL_STATES) and not is_terminal("UNKNOWN")


def test_tails_bash_case_comes_from_the_table() -> None:
    script = tail_script(slurm_id="1_0", path=None, lines=1, interval=2)
    for cat in (PENDING, RUNNING):
        pattern = case_pattern(cat)
        assert f"    {pattern})" in script
        assert set(pattern.split("|")) == {s for s, c in STATES.items() if c == cat}


def _case(pattern: str, state: str) -> bool:
    out = subprocess.run(["bash", "-c", f'case "$1" in {pattern}) echo yes ;; esac', "_", state],
                         capture_output=True, text=True, check=True).stdout
    return out.strip() == "yes"


def test_the_generated_case_matches_its_states_in_bash() -> None:
    assert _case(case_pattern(PENDING), "REQUEUE_HOLD") and not _case(case_pattern(PENDING), "RUNNING")
    assert _case(case_pattern(RUNNING), "STAGE_OUT") and not _case(case_pattern(RUNNING), "COMPLETED")


def test_awk_columns_come_from_the_field_tuple() -> None:
    assert column("ArrayJobID") == 1 and column("State") == SQUEUE_FIELDS.index("State") + 1
    assert f"${column('State')} == \"RUNNING\"" in _LOGGED_AWK and "$STATE" not in _LOGGED_AWK
    assert f"if (!(${column('State')} in act)) next" in _NEED_AWK and f"have[${column('ArrayJobID')}]" in _NEED_AWK
    line = "7|3|9|RUNNING|None|vm|0:01|10:00|x|N/A|0\n7|4|10|PENDING|None||0:00|10:00|N/A|N/A|0\n"
    out = subprocess.run(["awk", "-F|", _LOGGED_AWK], input=line, capture_output=True, text=True, check=True).stdout
    assert out == "7 3 9\n"


def test_lines_are_read_by_field_name_and_short_lines_skipped() -> None:
    text = "a|b|c|extra\nnoise\n x | y | z \n"
    assert list(records(text, ("one", "two", "three"))) == [
        {"one": "a", "two": "b", "three": "c"}, {"one": "x", "two": "y", "three": "z"}]
    assert "JobID" in SACCT_FIELDS and "exit_code" in SQUEUE_FIELDS


def test_command_builders_quote_what_they_are_given() -> None:
    assert scancel_command(["12", "13_4", "x;rm -rf /"]) == "scancel -- 12 13_4 'x;rm -rf /'"
    assert show_config_command() == "scontrol show config 2>/dev/null | grep -iE '^(MaxArraySize|MinJobAge)'"
    assert show_job_command('"$id"') == "scontrol -o show job \"$id\" 2>/dev/null | grep -m 1 '^JobId='"
    assert sacct_final_command('"$id"') == 'sacct -X -n -P -j "$id" --format=State,ExitCode'
    assert shlex.split(sbatch_test_only_command("job.sbatch", job_name="atlas preflight")) == [
        "sbatch", "--test-only", "--job-name=atlas preflight", "--output=/dev/null", "job.sbatch"]


def test_an_array_holds_one_task_less_than_max_array_size() -> None:
    assert max_array_tasks(DEFAULT_MAX_ARRAY_SIZE) == DEFAULT_MAX_ARRAY_SIZE - 1
    assert max_array_tasks(1) == 1 and max_array_tasks(0) == 1


def test_a_stored_row_is_a_task_state_plus_where_and_when() -> None:
    state = TaskState("7", 2, "FAILED", reason="NonZeroExitCode", exit_code=3, source="sacct")
    row = TaskSeen.of(state, launch_id="l1", log_line="boom", seen=5.0)
    assert (row.launch_id, row.job_id, row.task, row.state, row.exit_code, row.log_line) == \
        ("l1", "7", 2, "FAILED", 3, "boom")
    assert row.task_state() == state and type(row.task_state()) is TaskState
    assert TaskSeen(launch_id="l1", job_id="7", task=0, state="PENDING").source == ""  # as stored before


def test_merge_of_a_large_live_array_keeps_squeues_states() -> None:
    live = [TaskState("9", t, "RUNNING" if t % 2 else "COMPLETED", exit_code=None if t % 2 else 0)
            for t in range(1000)]
    merged = merge_tasks(arrays={"9": 1000}, squeue=live, sacct=[], last_seen=[])
    assert [merged[("9", t)] for t in range(1000)] == live


def test_task_states_hand_written_init_takes_every_field_in_order() -> None:
    import inspect
    from dataclasses import fields, replace

    params = list(inspect.signature(TaskState.__init__).parameters)[1:]
    assert params == [f.name for f in fields(TaskState)]
    state = TaskState("1", 2, "RUNNING", node="vm")
    assert replace(state, state="COMPLETED") == TaskState("1", 2, "COMPLETED", node="vm")
    try:
        state.state = "FAILED"  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("TaskState must stay frozen")


def test_a_stored_row_of_a_stored_row_takes_the_new_launch_log_and_time() -> None:
    old = TaskSeen(launch_id="l1", job_id="7", task=0, state="RUNNING", log_line="step 1", seen=1.0)
    new = TaskSeen.of(old, launch_id="l1", log_line="step 2", seen=2.0)
    assert (new.state, new.log_line, new.seen, new.source) == ("RUNNING", "step 2", 2.0, "")
    assert vars(new).keys() == vars(old).keys()

"""``retry`` on the W&B backend, its pure part: which of a sweep's runs run again (failed, crashed or killed,
and no other run has their parameters), and the job that runs them as runs of the same sweep: the
parameters as the agent gives them (WANDB_SWEEP_PARAM_PATH), WANDB_SWEEP_ID, tags and group, quoted."""

from __future__ import annotations

import json
import time

from atlas_sweeps.backends.wandb.retry import failed_runs, next_row, plan_retry
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.config.templates import load_template
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord

CONFIG = {"program": "train.py", "method": "grid",
          "parameters": {"lr": {"values": [0.1, 0.2, 0.3, 0.4]}, "note": {"value": "it's $HOME"}}}
SWEEP = SweepRecord(launch_id="k3x9q2", name="grid_iso", tags=("iso", "dev_tests"), runs=4, jobs=2, config=CONFIG,
                    log_dir="/r/logs/k3x9q2/grid_iso", sweep_id="ent/proj/sw1", url="http://w/ent/proj/sweeps/sw1")


def _node(name: str, state: str, lr: float) -> dict:
    return {"name": name, "state": state,
            "config": json.dumps({"lr": {"value": lr}, "note": {"value": "it's $HOME"}, "_wandb": {"value": {}}})}


NODES = [_node("a", "finished", 0.1), _node("b", "failed", 0.2), _node("c", "crashed", 0.3),
         _node("c2", "failed", 0.3), _node("d", "failed", 0.4), _node("d2", "running", 0.4)]


def test_failed_runs_whose_parameters_no_other_run_has_run_again_once() -> None:
    runs = failed_runs(SWEEP, NODES)
    assert [(r.run_id, r.state, r.params["lr"]) for r in runs] == [("b", "failed", 0.2), ("c", "crashed", 0.3)]
    assert runs[0].params == {"lr": 0.2, "note": "it's $HOME"}


def test_the_retry_job_runs_each_config_as_a_run_of_the_same_sweep() -> None:
    launch = LaunchRecord(id="k3x9q2", created=time.time(), config_path="/p/g.yml", config_text="", cluster="c",
                          backend="wandb", nodes=2, remote_dir="/r", snapshot="/r/snapshots/k3x9q2", status="submitted",
                          total_runs=4, total_hours=4.0)
    agents = JobRecord(launch_id="k3x9q2", sweep_name="grid_iso", chunk=0, job_id="7", job_name="atlas-k3x9q2-grid_iso",
                       array_spec="0-1", task_offset=0, task_count=2, output="/o", error="/e", script="/s",
                       submitted=time.time())
    plan = plan_retry(launch, [SWEEP], [agents], {"grid_iso": NODES}, profile=Profile(name="c"),
                      template=load_template(None), base_url="http://w")
    assert plan.attempt == 2 and len(plan.runs) == 2 and next_row([agents], "grid_iso") == 2
    (prepared,) = plan.prepared
    (sub,) = prepared.submissions
    assert sub.job_name == "atlas-k3x9q2-grid_iso-r1" and sub.chunk.array_spec == "0-1"
    assert sub.output == "/r/logs/k3x9q2/retry2/grid_iso/%A_%a.out" and "--chdir=/r/snapshots/k3x9q2" in sub.command()
    script = prepared.script_text
    assert "WANDB_SWEEP_ID=sw1" in script and "WANDB_ENTITY=ent" in script and "WANDB_PROJECT=proj" in script
    assert "WANDB_TAGS=iso,dev_tests" in script and "WANDB_RUN_GROUP=grid_iso" in script
    assert "WANDB_MODE" not in script  # online, as the agent's runs
    assert 'export WANDB_SWEEP_PARAM_PATH=/r/launches/k3x9q2/retry2/grid_iso/runs/"$task".sweep.json' in script
    params = json.loads(prepared.files["/r/launches/k3x9q2/retry2/grid_iso/runs/1.sweep.json"])
    assert params == {"wandb_version": 1, "lr": {"value": 0.3}, "note": {"value": "it's $HOME"}}
    argv = prepared.files["/r/launches/k3x9q2/retry2/grid_iso/runs/0.args"].split(b"\0")
    assert argv[-3:] == [b"--lr=0.2", b"--note=it's $HOME", b""]  # one argument, never re-parsed by a shell
    doc = plan.document(submitted={sub.key: "9"})
    assert [r["run_id"] for r in doc["arrays"][0]["runs"]] == ["b", "c"] and doc["arrays"][0]["job_id"] == "9"

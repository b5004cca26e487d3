"""Onboarding and doctor, pure: the probe's answer recorded on both sandboxes (Slurm 22.05 with accounting;
24.11 without), the profile it proposes, and doctor's lines with their fixes."""

from __future__ import annotations

from pathlib import Path

import tomllib

from atlas_sweeps.clusters.doctor import FAIL, OK, WARN, checks, job_test_script, would_stop_a_launch
from atlas_sweeps.clusters.probe import ClusterFacts, Partition, parse_probe, probe_script
from atlas_sweeps.clusters.proposal import propose
from atlas_sweeps.config.profile import Profile, SlurmOptions, profile_toml

DATA = Path(__file__).parent / "data"
# Recorded with probe_script(setup=("source /home/atlas/venv/bin/activate", "false_cmd_xyz"),
# interpreter="python", test_script=<partition debug>) on the sandbox, and with interpreter="python3" and
# partition "nope" on sandbox-trixie.
SANDBOX = parse_probe((DATA / "probe_sandbox_2205.txt").read_text())
TRIXIE = parse_probe((DATA / "probe_trixie_2411.txt").read_text())


def test_the_probe_reads_partitions_accounts_accounting_and_tools_on_both_slurms() -> None:
    assert SANDBOX.complete and TRIXIE.complete
    assert [(p.name, p.default, p.time_limit, p.up) for p in SANDBOX.partitions] == [("debug", True, "infinite", True)]
    assert SANDBOX.accounts == ("atlas",) and SANDBOX.qos == ("normal",) and SANDBOX.default_account == "atlas"
    assert (SANDBOX.accounting, SANDBOX.max_array_size, SANDBOX.slurm_version) == (True, 1001, "22.05.8")
    assert (TRIXIE.accounting, TRIXIE.slurm_version, TRIXIE.accounts) == (False, "24.11.5", ())
    assert "accounting storage is disabled" in TRIXIE.accounting_error
    assert SANDBOX.rsync.startswith("rsync  version 3.2.7") and TRIXIE.rsync.startswith("rsync  version 3.5.0")
    assert "python" not in TRIXIE.commands and TRIXIE.commands["python3"] == "/usr/bin/python3"
    assert SANDBOX.venvs == ("~/venv/bin/activate",) and SANDBOX.home == "/home/atlas"


def test_the_probe_names_the_first_failing_setup_line_and_slurms_refusal() -> None:
    assert SANDBOX.setup_failed == 1 and "false_cmd_xyz: command not found" in SANDBOX.setup_error
    assert SANDBOX.interpreter is None and SANDBOX.test_only == ""
    assert TRIXIE.setup_failed is None and TRIXIE.interpreter == "/usr/bin/python3"
    assert "invalid partition specified: nope" in (TRIXIE.test_only or "")


def test_gres_counts_gpus() -> None:
    def part(gres: str) -> Partition:
        return Partition(name="g", default=True, time_limit="1-00:00:00", default_time="n/a", gres=gres, up=True)

    assert [part(g).gpus for g in ("(null)", "gpu:4", "gpu:a100:8(S:0-1)", "gpu:a100:2,gpu:v100:2", "mps:100")] == \
        [0, 4, 8, 4, 0]


def test_the_proposal_works_on_the_sandbox_as_found() -> None:
    proposal = propose("mine", host="sandbox-alias", facts=SANDBOX)
    profile = proposal.profile
    assert (profile.host, profile.port, profile.user, profile.identity_file) == ("sandbox-alias", None, None, None)
    assert profile.setup == ("source ~/venv/bin/activate",) and profile.interpreter == "python3"
    assert (profile.slurm.partition, profile.slurm.time, profile.slurm.gpus, profile.slurm.account) == \
        ("debug", "01:00:00", None, None)  # one account only: not written
    assert profile.backend is None  # compute nodes not probed: chosen at launch from the credentials found
    text = profile_toml(profile)
    assert tomllib.loads(text)["slurm"] == {"partition": "debug", "time": "01:00:00"}
    assert any("partition debug" in r for r in proposal.reasons) and any("venv" in r for r in proposal.reasons)


def test_the_proposal_picks_gpus_a_time_within_the_limit_the_default_account_and_the_backend() -> None:
    facts = ClusterFacts(
        partitions=(Partition("cpu", False, "7-00:00:00", "n/a", "(null)", True),
                    Partition("gpu", True, "00:30:00", "n/a", "gpu:a100:4", True)),
        accounts=("lab", "course"), default_account="lab", commands={"python": "/usr/bin/python"},
        compute_wandb=False, complete=True)
    profile = propose("g", host="login", facts=facts, user="me", port=2222).profile
    assert (profile.slurm.partition, profile.slurm.time, profile.slurm.gpus, profile.slurm.account) == \
        ("gpu", "00:30:00", 1, "lab")
    assert (profile.interpreter, profile.backend, profile.user, profile.port) == ("python", "local", "me", 2222)
    assert propose("g", host="login", facts=ClusterFacts(
        partitions=(Partition("p", True, "2-00:00:00", "04:00:00", "(null)", True),), compute_wandb=True)
    ).profile.slurm.time == "04:00:00"


def test_doctor_names_a_broken_setup_line_a_missing_partition_and_a_missing_wandb_login() -> None:
    profile = Profile(name="c", source="/cfg/c.toml", setup=("source /home/atlas/venv/bin/activate", "false_cmd_xyz"),
                      slurm=SlurmOptions(partition="gpu"))
    facts = ClusterFacts(**{**vars(SANDBOX), "wandb_problems": ("no W&B credentials for https://api.wandb.ai on the "
                                                                 "cluster for user atlas: run 'wandb login ...'",)})
    results = {c.name: c for c in checks(profile, facts, login="atlas@127.0.0.1:2222", needs_wandb=True)}
    assert results["set-up lines"].status == FAIL
    assert "line 2 failed: 'false_cmd_xyz'" in results["set-up lines"].detail
    assert "command not found" in results["set-up lines"].detail and "/cfg/c.toml" in results["set-up lines"].fix
    assert results["partition"].status == FAIL and "partitions: debug*" in results["partition"].detail
    assert results["W&B login"].status == FAIL and "wandb login" in results["W&B login"].detail
    assert results["interpreter"].status == FAIL and results["accounting"].status == OK
    assert would_stop_a_launch(list(results.values()))
    trixie = {c.name: c for c in checks(Profile(name="t", interpreter="python3"), TRIXIE, login="x", needs_wandb=False)}
    assert trixie["accounting"].status == WARN and "W&B login" not in trixie
    assert trixie["sbatch --test-only"].status == FAIL and "invalid partition" in trixie["sbatch --test-only"].detail


def test_the_job_test_script_carries_the_profiles_options_and_the_probe_quotes_what_it_sends() -> None:
    script = job_test_script(Profile(name="c", slurm=SlurmOptions(partition="gpu", account="lab", time="1:00:00")))
    assert "#SBATCH --partition=gpu\n" in script and "#SBATCH --account=lab\n" in script
    probe = probe_script(interpreter="py; touch /tmp/x")
    assert "command -v 'py; touch /tmp/x'" in probe

"""Cluster profiles: where they are read from, precedence, overrides and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.errors import ConfigError, UsageError
from atlas_sweeps.profile import available_profiles, load_profile


@pytest.fixture()
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    config = tmp_path / "xdg"
    project = tmp_path / "project"
    (config / "atlas-sweeps" / "clusters").mkdir(parents=True)
    project.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config / "atlas-sweeps", project


def test_user_profile_is_read_with_slurm_and_wandb_tables(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "hpc.toml").write_text(
        'host = "login.hpc"\nuser = "me"\nsetup = ["module load cuda"]\n'
        '[slurm]\npartition = "gpu"\ngpus = 2\n[wandb]\nentity = "lab"\nbase_url = "http://w:8080"\n')
    profile = load_profile(None, project_dir=project)
    assert (profile.name, profile.host, profile.user) == ("hpc", "login.hpc", "me")
    assert profile.setup == ("module load cuda",)
    assert profile.slurm.directives() == ["--partition=gpu", "--gres=gpu:2"]
    assert profile.slurm.gpus_per_job == 2
    assert (profile.wandb_entity, profile.wandb_base_url) == ("lab", "http://w:8080")


def test_project_file_wins_and_default_cluster_picks(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "user-a"\n')
    (user / "clusters" / "b.toml").write_text('host = "user-b"\n')
    (project / "atlas-sweeps.toml").write_text('default_cluster = "a"\n[clusters.a]\nhost = "project-a"\n')
    assert load_profile(None, project_dir=project).host == "project-a"
    assert load_profile("b", project_dir=project).host == "user-b"
    assert set(available_profiles(project_dir=project)) == {"a", "b"}


def test_several_profiles_without_default_asks_to_pick(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "x"\n')
    (user / "clusters" / "b.toml").write_text('host = "y"\n')
    with pytest.raises(UsageError, match="--cluster"):
        load_profile(None, project_dir=project)
    with pytest.raises(UsageError, match="no cluster profile named 'c'"):
        load_profile("c", project_dir=project)


def test_no_profile_names_the_sandbox(dirs: tuple[Path, Path]) -> None:
    _, project = dirs
    with pytest.raises(UsageError, match="sandbox up"):
        load_profile(None, project_dir=project)


def test_unknown_keys_get_did_you_mean_and_exit_2(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('hots = "x"\n')
    with pytest.raises(ConfigError, match="did you mean 'host'") as info:
        load_profile("a", project_dir=project)
    assert info.value.exit_code == 2 and "a.toml" in str(info.value)
    (user / "clusters" / "a.toml").write_text('host = "x"\n[slurm]\npartiton = "gpu"\n')
    with pytest.raises(ConfigError, match="did you mean 'partition'"):
        load_profile("a", project_dir=project)


def test_bad_values_are_refused(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('backend = "slurm"\n')
    with pytest.raises(ConfigError, match="backend must be one of"):
        load_profile("a", project_dir=project)
    (user / "clusters" / "a.toml").write_text("status_interval = 0.5\n")
    with pytest.raises(ConfigError, match="floor of 2 s"):
        load_profile("a", project_dir=project)
    (user / "clusters" / "a.toml").write_text('host = "login.hpc"\nstatus_interval = 2\n')
    with pytest.raises(ConfigError, match="floor of 5 s"):  # a shared cluster gets a higher floor
        load_profile("a", project_dir=project)
    (user / "clusters" / "a.toml").write_text('host = "127.0.0.1"\nport = 2222\nstatus_interval = 2\n')
    assert load_profile("a", project_dir=project).status_interval == 2  # the sandbox may poll fast
    (user / "clusters" / "a.toml").write_text("host = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile("a", project_dir=project)


def test_overrides_touch_only_given_options(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "x"\n[slurm]\npartition = "gpu"\ntime = "1:00:00"\n')
    profile = load_profile("a", project_dir=project).with_overrides(slurm_time="0:05:00", slurm_partition=None,
                                                                   template="mine.sbatch")
    assert (profile.slurm.partition, profile.slurm.time, profile.template) == ("gpu", "0:05:00", "mine.sbatch")


def test_profile_toml_round_trips_through_the_loader(dirs: tuple[Path, Path]) -> None:
    from atlas_sweeps.profile import Profile, SlurmOptions, profile_toml

    user, project = dirs
    original = Profile(name="rt", host="login", port=2200, setup=("module load x", 'echo "q"'), wrap="apptainer exec a.sif",
                       wandb_entity="lab", wandb_online=True, excludes=("data/",), status_interval=30.0,
                       slurm=SlurmOptions(partition="gpu", gpus=1, extra=("--exclusive",)))
    (user / "clusters" / "rt.toml").write_text(profile_toml(original, header="# mine"))
    loaded = load_profile("rt", project_dir=project)
    assert loaded == Profile(**{**vars(original), "source": loaded.source})

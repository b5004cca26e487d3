"""Cluster profiles: where they are read from, precedence, overrides and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.config.profile import available_profiles, load_profile
from atlas_sweeps.errors import ConfigError, UsageError


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
        '[slurm]\npartition = "gpu"\ngpus = 2\n[wandb]\nentity = "lab"\nbase_url = "https://w:8080"\n')
    profile = load_profile(None, project_dir=project)
    assert (profile.name, profile.host, profile.user) == ("hpc", "login.hpc", "me")
    assert profile.setup == ("module load cuda",)
    assert profile.slurm.directives() == ["--partition=gpu", "--gres=gpu:2"]
    assert profile.slurm.gpus_per_job == 2
    assert (profile.wandb_entity, profile.wandb_base_url) == ("lab", "https://w:8080")


def test_project_file_adds_job_options_to_the_users_profile_and_says_so(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "user-a"\nsetup = ["source ~/venv/bin/activate"]\n'
                                              '[slurm]\npartition = "cpu"\ntime = "01:00:00"\n')
    (user / "clusters" / "b.toml").write_text('host = "user-b"\n')
    (project / "atlas-sweeps.toml").write_text(
        'default_cluster = "a"\n[clusters.a]\nsetup = ["module load cuda"]\n[clusters.a.slurm]\n'
        'partition = "gpu"\n[clusters.a.wandb]\nproject = "proj"\n')
    profile = load_profile(None, project_dir=project)
    assert (profile.name, profile.host, profile.setup) == ("a", "user-a", ("module load cuda",))
    assert (profile.slurm.partition, profile.slurm.time, profile.wandb_project) == ("gpu", "01:00:00", "proj")
    assert profile.project_keys == ("setup", "slurm.partition", "wandb.project")
    assert profile.project_note == (f"the project file {project / 'atlas-sweeps.toml'} sets setup, "
                                    "slurm.partition, wandb.project for cluster 'a'")
    other = load_profile("b", project_dir=project)
    assert (other.host, other.project_note) == ("user-b", None)
    assert set(available_profiles(project_dir=project)) == {"a", "b"}


@pytest.mark.parametrize(("line", "key"), [
    ('host = "evil.example.org"', "host"), ("port = 2222", "port"), ('user = "attacker"', "user"),
    ('identity_file = "keys/id"', "identity_file"), ('known_hosts = "ssh/known_hosts"', "known_hosts"),
    ('proxy_command = "nc evil 22"', "proxy_command"), ('transport = "openssh"', "transport"),
    ('wandb = { base_url = "https://evil.example.org" }', "wandb.base_url"),
])
def test_project_file_may_not_set_where_to_connect_or_where_keys_go(dirs: tuple[Path, Path], line: str,
                                                                   key: str) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "login.hpc"\n')
    (project / "atlas-sweeps.toml").write_text(f'[clusters.a]\nsetup = ["true"]\n{line}\n')
    with pytest.raises(ConfigError, match=f"a project file may not set {key}") as info:
        load_profile("a", project_dir=project)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{project / 'atlas-sweeps.toml'}:3: ")
    assert f"in your own profile {user / 'clusters' / 'a.toml'}" in str(info.value)


def test_project_file_cannot_define_a_cluster_of_its_own(dirs: tuple[Path, Path]) -> None:
    user, project = dirs
    (user / "clusters" / "mine.toml").write_text('host = "login.hpc"\n')
    (project / "atlas-sweeps.toml").write_text('default_cluster = "theirs"\n\n[clusters.theirs]\nsetup = ["x"]\n')
    assert set(available_profiles(project_dir=project)) == {"mine"}
    with pytest.raises(UsageError, match="no cluster profile named 'theirs' in your config directory") as info:
        load_profile(None, project_dir=project)
    assert f"{project / 'atlas-sweeps.toml'}:3 only adds job options" in str(info.value)
    assert str(user / "clusters" / "theirs.toml") in str(info.value)


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
    with pytest.raises(ConfigError, match="backend = 'slurm': expected one of local, wandb"):
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
    from atlas_sweeps.config.profile import Profile, SlurmOptions, profile_toml

    user, project = dirs
    original = Profile(name="rt", host="login", port=2200, setup=("module load x", 'echo "q"'), wrap="apptainer exec a.sif",
                       wandb_entity="lab", wandb_online=True, excludes=("data/",), status_interval=30.0,
                       slurm=SlurmOptions(partition="gpu", gpus=1, extra=("--exclusive",)))
    (user / "clusters" / "rt.toml").write_text(profile_toml(original, header="# mine"))
    loaded = load_profile("rt", project_dir=project)
    assert loaded == Profile(**{**vars(original), "source": loaded.source})


@pytest.mark.parametrize(("text", "line", "expected"), [
    ('host = "login"\nsetup = "module load cuda"\n', 2, "setup = 'module load cuda': expected a list of strings"),
    ('host = "login"\nstatus_interval = "fast"\n', 2, "expected a number of seconds"),
    ('host = "login"\nstatus_interval = nan\n', 2, "finite, positive number of seconds"),
    ('host = "login"\nport = "abc"\n', 2, "port = 'abc': expected an integer, not a string"),
    ("host = \"login\"\nport = 70000\n", 2, "expected an integer from 1 to 65535"),
    ('host = "x$(id)"\n', 1, "not a valid host name (OpenSSH refuses '$' '(' ')')"),
    ('host = "-oProxyCommand=id"\n', 1, "not a valid host name (OpenSSH refuses a leading '-')"),
    ('host = "a b"\n', 1, "not a valid host name"),
    ('host = "login"\nuser = "me;id"\n', 2, "not a valid user name"),
    ('host = "login"\n\n[slurm]\npartition = "gpu\\n#SBATCH --wrap=id"\n', 4,
     "slurm.partition = 'gpu\\n#SBATCH --wrap=id': contains the control character '\\n'"),
    ('[slurm]\ntime = "nan"\n', 2, "expected a Slurm time limit"),
    ('[slurm]\ngpus = true\n', 2, "expected an integer, not a boolean"),
    ('[slurm]\ncpus_per_task = 0\n', 2, "expected an integer from 1 up"),
    ('[slurm]\nmem = "lots"\n', 2, "expected a memory size"),
    ('[slurm]\nextra = ["--exclusive", "#SBATCH --x"]\n', 2, "item 2: expected an sbatch option starting with '-'"),
    ('slurm = "gpu"\n', 1, "slurm must be a table"),
    ('excludes = ["data/", 3]\n', 1, "item 2: expected a string"),
    ('[wandb]\nonline = "yes"\n', 2, "expected true or false"),
    ('[wandb]\nreap = "no"\n', 2, "expected true or false"),
    ('[wandb]\nbase_url = "http://wandb.example.org"\n', 2, "plain http to wandb.example.org would send the W&B API key"),
    ('[wandb]\nbase_url = "ftp://wandb.example.org"\n', 2, "expected an https:// URL"),
])
def test_every_value_is_checked_with_file_line_and_what_is_expected(dirs: tuple[Path, Path], text: str, line: int,
                                                                     expected: str) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text(text)
    _assert_refused_at(user / "clusters" / "a.toml", line, expected, project=project)


def _assert_refused_at(path: Path, line: int, expected: str, *, project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("a", project_dir=project)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(("text", "line", "expected"), [
    ("clusters = 3\n", 1, "clusters must hold tables, one per cluster"),
    ('[clusters]\na = "gpu"\n', 2, "clusters.a must be a table of job options"),
    ('[clusters.a]\nsetup = "module load cuda"\n', 2, "expected a list of strings"),
    ('[clusters."a".slurm]\npartition = "a\\nb"\n', 2, "control character"),
    ("default_cluster = 3\n", 1, "default_cluster must be the name of a cluster profile"),
    ('defualt_cluster = "a"\n', 1, "did you mean 'default_cluster'"),
])
def test_project_file_values_are_checked_too(dirs: tuple[Path, Path], text: str, line: int, expected: str) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text('host = "login"\n')
    (project / "atlas-sweeps.toml").write_text(text)
    _assert_refused_at(project / "atlas-sweeps.toml", line, expected, project=project)


@pytest.mark.parametrize("url", ["https://wandb.example.org", "http://127.0.0.1:8080", "http://localhost:8080",
                                 "http://[::1]:8080", "http://127.0.0.2"])
def test_base_url_over_https_or_to_loopback_is_accepted(dirs: tuple[Path, Path], url: str) -> None:
    user, project = dirs
    (user / "clusters" / "a.toml").write_text(f'[wandb]\nbase_url = "{url}/"\n')
    assert load_profile("a", project_dir=project).wandb_base_url == url


@pytest.mark.parametrize(("changes", "expected"), [
    ({"slurm_partition": "gpu\n#SBATCH --wrap=id"}, "--partition 'gpu\\n#SBATCH --wrap=id': contains the control"),
    ({"slurm_partition": "gpu debug"}, "--partition 'gpu debug': expected one word"),
    ({"slurm_time": "nan"}, "--time 'nan': expected a Slurm time limit"),
    ({"slurm_time": "1:00:00\r"}, "--time '1:00:00\\r': contains the control character"),
    ({"template": ""}, "--template '': expected a non-empty string"),
])
def test_flag_overrides_pass_the_same_checks(changes: dict[str, str], expected: str) -> None:
    from atlas_sweeps.config.profile import Profile

    with pytest.raises(UsageError) as info:
        Profile(name="a").with_overrides(**changes)
    assert info.value.exit_code == 2 and expected in str(info.value)


def test_every_profile_option_has_a_check() -> None:
    from dataclasses import fields

    from atlas_sweeps.config.profile import _CHECKS, _WANDB_KEYS, Profile, SlurmOptions

    attributes = {f.name for f in fields(Profile)} - {"name", "slurm", "source", "project_file", "project_keys"}
    wandb_attrs = set(_WANDB_KEYS.values())
    assert {k for k in _CHECKS if "." not in k} == attributes - wandb_attrs
    assert {k[6:] for k in _CHECKS if k.startswith("slurm.")} == {f.name for f in fields(SlurmOptions)}
    assert {_WANDB_KEYS[k[6:]] for k in _CHECKS if k.startswith("wandb.")} == wandb_attrs

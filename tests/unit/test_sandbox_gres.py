"""The sandbox node's GPUs: the daemons' config (GPU lines before slurm.conf), gres.conf backed by device
files, the sessions' SLURM_CONF line in ~/.bashrc, and the daemons started on that config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from atlas_sweeps.sandbox import release_lifecycle
from atlas_sweeps.sandbox.components import build_components, build_release_components
from atlas_sweeps.sandbox.config import SandboxSettings
from atlas_sweeps.sandbox.gres import (
    BASHRC_MARK,
    bashrc_with_slurm_conf,
    gpu_files,
    make_gpu_files,
    point_bashrc_at,
    render_daemons_conf,
    render_gres_conf,
)
from atlas_sweeps.sandbox.paths import SandboxPaths
from atlas_sweeps.sandbox.release_config import DAEMONS_CONF, ReleasePaths
from atlas_sweeps.sandbox.releases import RELEASES

PATHS = SandboxPaths(Path("/srv/sb"))
SETTINGS = SandboxSettings(hostname="vm", cpus=2, real_memory_mb=21000)
SKEL = "# ~/.bashrc\ncase $- in\n    *i*) ;;\n      *) return;;\nesac\nalias ll='ls -l'\n"


def _settings_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def test_daemons_conf_sets_gres_types_and_the_node_default_before_including_slurm_conf() -> None:
    lines = _settings_lines(render_daemons_conf("/srv/sb/etc/slurm.conf", count=4))
    # NodeName=DEFAULT applies only to node lines after it: the Include (with the node's line) comes last.
    assert lines == ["GresTypes=gpu", "NodeName=DEFAULT Gres=gpu:4", "Include /srv/sb/etc/slurm.conf"]


def test_gres_conf_names_one_device_file_per_gpu_and_detects_nothing() -> None:
    files = gpu_files("/srv/sb/dev", 3)
    assert files == ["/srv/sb/dev/gpu0", "/srv/sb/dev/gpu1", "/srv/sb/dev/gpu2"]
    assert _settings_lines(render_gres_conf(files)) == [
        "AutoDetect=off", "Name=gpu File=/srv/sb/dev/gpu0", "Name=gpu File=/srv/sb/dev/gpu1",
        "Name=gpu File=/srv/sb/dev/gpu2"]


def test_gpu_files_are_made_once_as_devices_or_plain_files(tmp_path: Path) -> None:
    wanted = [tmp_path / "dev" / f"gpu{i}" for i in range(2)]
    assert make_gpu_files(wanted) == wanted
    assert make_gpu_files(wanted) == []
    for path in wanted:
        mode = os.stat(path).st_mode
        assert stat.S_ISCHR(mode) or stat.S_ISREG(mode)
        assert mode & 0o666 == 0o666
        if os.geteuid() == 0:
            assert stat.S_ISCHR(mode) and os.major(os.stat(path).st_rdev) == 1


def test_bashrc_gets_the_slurm_conf_export_first_once_and_keeps_the_rest() -> None:
    once = bashrc_with_slurm_conf(SKEL, "/srv/sb/etc/slurm.conf.d/daemons.conf")
    first, rest = once.split("\n", 1)
    # Before Debian's early return for non-interactive shells, which commands sent over SSH are.
    assert first == f"export SLURM_CONF=/srv/sb/etc/slurm.conf.d/daemons.conf  {BASHRC_MARK}"
    assert rest == SKEL
    assert bashrc_with_slurm_conf(once, "/srv/sb/etc/slurm.conf.d/daemons.conf") == once
    moved = bashrc_with_slurm_conf(once, "/other dir/daemons.conf")
    assert moved.count(BASHRC_MARK) == 1 and moved.startswith("export SLURM_CONF='/other dir/daemons.conf'  ")


def test_point_bashrc_rewrites_only_when_it_changes(tmp_path: Path) -> None:
    (tmp_path / ".bashrc").write_text(SKEL)
    assert point_bashrc_at(tmp_path, "/srv/x.conf") is True
    assert point_bashrc_at(tmp_path, "/srv/x.conf") is False
    assert (tmp_path / ".bashrc").read_text().endswith(SKEL)


def test_host_slurm_daemons_read_the_daemons_conf_and_restart_when_gres_files_change() -> None:
    comps = build_components(SETTINGS, PATHS)
    for name in ("slurmctld", "slurmd"):
        comp = comps[name]
        assert comp.argv[comp.argv.index("-f") + 1] == "/srv/sb/etc/slurm.conf.d/daemons.conf"
        assert {PATHS.slurm_conf, PATHS.daemons_conf, PATHS.gres_conf} <= set(comp.config_files)
        # An earlier version's up recognises these daemons as its own by slurm.conf's path in argv.
        assert str(PATHS.slurm_conf) in " ".join(comp.argv)
    assert PATHS.gres_conf.parent == PATHS.daemons_conf.parent  # slurmd reads gres.conf beside its config


def test_trixie_writes_every_file_its_daemons_look_for_beside_daemons_conf(tmp_path: Path) -> None:
    paths = ReleasePaths(tmp_path / "trixie")
    for d in ("etc/slurm", "etc/ssh"):
        (paths.root / d).mkdir(parents=True)
    settings = SandboxSettings(hostname="vm", cpus=2, real_memory_mb=21000)
    release_lifecycle._write_configs(RELEASES["trixie"], settings, paths)
    beside = paths.inside(DAEMONS_CONF).parent
    # slurmd 24.11 stops with "No filesystem mounted on /sys/fs/cgroup" without the cgroup.conf beside it.
    assert (beside / "cgroup.conf").read_text() == (paths.root / "etc/slurm/cgroup.conf").read_text()
    gres_lines = _settings_lines((beside / "gres.conf").read_text())
    assert all(paths.inside(line.split("File=")[1]).exists() for line in gres_lines if "File=" in line)
    comps = build_release_components(settings, paths, "trixie")
    assert comps["slurmd"].argv == ("/usr/sbin/slurmd", "-f", DAEMONS_CONF, "-N", "trixie")

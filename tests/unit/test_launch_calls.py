"""A whole launch on this machine (``LocalRemote``, real rsync and bash, stand-in Slurm commands on PATH):
three remote calls (preflight, rsync, submit), the snapshot frozen before any sbatch, and a resume after a
cut at each call that syncs only an unfinished snapshot and submits nothing twice."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.launch.launcher import Launcher, LaunchOptions, LaunchResult, prepare
from atlas_sweeps.remote.base import Result
from atlas_sweeps.remote.local import LocalRemote
from atlas_sweeps.state.store import StateDB

SWEEPS = ("program: prog.py\nmethod: grid\nparameters:\n  seed:\n    value: 1\n  subtests:\n"
          "    a:\n      hp:\n        values: [1, 2]\n    b:\n      hp:\n        values: [3, 4]\n")
PREFLIGHT, RSYNC, SUBMIT = 1, 2, 3


class CutRemote(LocalRemote):
    """A LocalRemote whose connection drops at the start of remote call ``cut`` (counted over its life)."""

    def __init__(self, *, home: Path, cut: int | None, log: list[str]) -> None:
        super().__init__(home=home)
        self.cut, self.log = cut, log

    def _drop(self, what: str) -> None:
        self.log.append(what)
        if len(self.log) == self.cut:
            raise RemoteError("lost the connection to the stand-in", hint="check the network and retry")

    def run_script(self, script: str, *, timeout: float | None = None) -> Result:
        self._drop("script")
        return super().run_script(script, timeout=timeout)

    def stream_script(self, script: str, *, on_stdout: Callable[[str], None],
                      stop: threading.Event | None = None) -> int:
        self._drop("stream")
        return super().stream_script(script, on_stdout=on_stdout, stop=stop)

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        self._drop("rsync")
        return super().rsync(args, on_progress=on_progress)


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A project, a cluster profile, a state directory and stand-in sbatch/scontrol/squeue/sacct."""
    project, home, bindir = tmp_path / "project", tmp_path / "home", tmp_path / "bin"
    for d in (project, home, bindir, tmp_path / "xdg" / "atlas-sweeps" / "clusters"):
        d.mkdir(parents=True)
    (project / "prog.py").write_text("print('hi')\n")
    (project / "two.yml").write_text(SWEEPS)
    (tmp_path / "xdg" / "atlas-sweeps" / "clusters" / "t.toml").write_text(
        f'host = "local"\nremote_dir = "{home}/atlas"\ninterpreter = "bash"\n')
    snap = f"{home}/atlas/snapshots"
    tools = {
        # a real submission records whether a snapshot had anything writable when it ran (by mode: root may write)
        "sbatch": 'case " $* " in *" --test-only "*) exit 0 ;; esac\n'
                  f'[ -n "$(find {snap} -mindepth 1 -perm /222)" ] && echo WRITABLE >> {tmp_path}/sbatch.log\n'
                  f'echo "$*" >> {tmp_path}/sbatch.log; echo $(( 100 + $(wc -l < {tmp_path}/sbatch.log) ))',
        "scontrol": 'echo "MaxArraySize = 1001"; echo "MinJobAge = 300 sec"',
        "squeue": "true", "sacct": "true",
    }
    for name, body in tools.items():
        (bindir / name).write_text("#!/bin/bash\n" + body + "\n")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    return {"project": project, "home": home, "db": tmp_path / "state" / "state.db", "log": tmp_path / "sbatch.log"}


def _launcher(site: dict[str, Path], *, cut: int | None, log: list[str]) -> Launcher:
    def factory(_profile: object) -> LocalRemote:
        return CutRemote(home=site["home"], cut=cut, log=log)

    return Launcher(db=StateDB(site["db"]), remote_factory=factory)


def _launch(site: dict[str, Path], *, cut: int | None = None, log: list[str] | None = None) -> LaunchResult:
    prepared = prepare(LaunchOptions(config="two", cluster="t", nodes=2, backend="local"), cwd=site["project"])
    return _launcher(site, cut=cut, log=[] if log is None else log).launch(prepared)


def _read_only(path: Path) -> bool:
    return all(p.stat().st_mode & 0o222 == 0 for p in (path, *path.rglob("*")))


def _sbatches(site: dict[str, Path]) -> list[str]:
    return site["log"].read_text().splitlines() if site["log"].exists() else []


def test_a_launch_makes_three_remote_calls_and_freezes_the_snapshot_before_any_sbatch(
        site: dict[str, Path]) -> None:
    log: list[str] = []
    result = _launch(site, log=log)
    assert log == ["script", "rsync", "stream"] and result.remote_calls == 3
    assert result.launch.status == "submitted" and len(result.jobs) == 2
    snapshot = Path(result.launch.snapshot)
    assert snapshot == site["home"] / "atlas" / "snapshots" / result.launch.id
    assert (snapshot / "prog.py").read_text() == "print('hi')\n" and _read_only(snapshot)
    sbatches = _sbatches(site)
    assert len(sbatches) == 2 and "WRITABLE" not in sbatches
    second = _launch(site)  # links to the first snapshot: only what changed travels
    assert second.remote_calls == 3 and second.snapshot_files == 0


@pytest.mark.parametrize(("cut", "resume_calls"), [(RSYNC, ["script", "rsync", "stream"]),
                                                   (SUBMIT, ["script", "rsync", "stream"])])
def test_a_resume_after_a_cut_syncs_an_unfrozen_snapshot_again_and_submits_once(
        site: dict[str, Path], cut: int, resume_calls: list[str]) -> None:
    with pytest.raises(RemoteError, match="--resume"):
        _launch(site, cut=cut)
    db = StateDB(site["db"])
    [record] = db.launches()
    assert record.status == "partial" and record.snapshot == ""
    log: list[str] = []
    resumed = _launcher(site, cut=None, log=log).resume(record.id, cwd=site["project"])
    assert log == resume_calls and resumed.remote_calls == 3
    assert resumed.launch.status == "submitted" and resumed.launch.snapshot
    sbatches = _sbatches(site)
    assert len(sbatches) == 2 and "WRITABLE" not in sbatches


def test_a_resume_after_the_submit_call_froze_the_snapshot_does_not_sync_again(site: dict[str, Path]) -> None:
    prepared = prepare(LaunchOptions(config="two", cluster="t", nodes=2, backend="local"), cwd=site["project"])
    launcher = _launcher(site, cut=None, log=[])
    # sbatch refuses the second array: the submit call froze the snapshot and submitted one array
    (site["log"].parent / "bin" / "sbatch").write_text(
        "#!/bin/bash\ncase \" $* \" in *\" --test-only \"*) exit 0 ;; esac\n"
        f"[ -e {site['log']} ] && {{ echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1; }}\n"
        f"echo \"$*\" >> {site['log']}; echo 101\n")
    with pytest.raises(RemoteError, match="QOSMaxSubmitJobPerUserLimit"):
        launcher.launch(prepared)
    [record] = StateDB(site["db"]).launches()
    assert record.snapshot and record.status == "partial"
    (site["log"].parent / "bin" / "sbatch").write_text(
        "#!/bin/bash\ncase \" $* \" in *\" --test-only \"*) exit 0 ;; esac\n"
        f"echo \"$*\" >> {site['log']}; echo 102\n")
    log: list[str] = []
    resumed = _launcher(site, cut=None, log=log).resume(record.id, cwd=site["project"])
    assert log == ["script", "stream"] and resumed.launch.status == "submitted"
    assert sorted(j.job_id for j in resumed.jobs) == ["101", "102"]


def test_a_cut_at_the_preflight_leaves_no_launch(site: dict[str, Path]) -> None:
    with pytest.raises(RemoteError):
        _launch(site, cut=PREFLIGHT)
    assert StateDB(site["db"]).launches() == []

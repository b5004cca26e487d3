"""Cancel's core apart from planning (tests/unit/test_status.py plans): one scancel call whose failure says
what scancel said, and W&B sweeps stopped one by one, naming the one that failed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_sweeps.errors import BackendError, RemoteError
from atlas_sweeps.launch.cancel import CancelPlan, run_scancel, stop_sweeps
from atlas_sweeps.remote.local import LocalRemote

PLAN = CancelPlan(what="launch l1", launch_id="l1", cluster="c", slurm_ids=("12", "13_4"), jobs=3,
                  sweep_ids=("sw1", "sw2"))


def _remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scancel: str) -> LocalRemote:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "scancel").write_text("#!/bin/bash\n" + scancel + "\n")
    (bindir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return LocalRemote(home=tmp_path)


def test_scancel_is_one_call_for_every_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = _remote(tmp_path, monkeypatch, f'echo "$*" > {tmp_path}/args')
    run_scancel(remote, PLAN, cluster="c")
    assert remote.calls == 1 and (tmp_path / "args").read_text() == "-- 12 13_4\n"


def test_a_failed_scancel_says_what_scancel_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = _remote(tmp_path, monkeypatch, 'echo "scancel: error: Kill job error on job id 12: Access denied"; exit 1')
    with pytest.raises(RemoteError, match=r"scancel failed on c \(exit 1\): scancel: error: .*Access denied"):
        run_scancel(remote, PLAN, cluster="c")


class _Backend:
    name = "wandb"

    def __init__(self, fail: str | None) -> None:
        self.fail = fail
        self.stopped: list[str] = []

    def stop(self, sweep_id: str) -> str | None:
        if sweep_id == self.fail:
            raise ConnectionError("W&B did not answer")
        self.stopped.append(sweep_id)
        return f"stopped W&B sweep {sweep_id}"


def test_sweeps_are_stopped_one_by_one_and_a_failure_names_the_sweep() -> None:
    said: list[str] = []
    assert stop_sweeps(_Backend(None), PLAN, target="l1", on_stopped=said.append)  # type: ignore[arg-type]
    assert said == ["stopped W&B sweep sw1", "stopped W&B sweep sw2"]
    failing = _Backend("sw2")
    with pytest.raises(BackendError, match="could not stop wandb sweep sw2: W&B did not answer") as caught:
        stop_sweeps(failing, PLAN, target="l1", on_stopped=said.append)  # type: ignore[arg-type]
    assert failing.stopped == ["sw1"] and "retry 'atlas-sweeps cancel l1'" in str(caught.value)


def test_a_backend_with_nothing_to_stop_says_nothing() -> None:
    from atlas_sweeps.backends import make_backend

    said: list[str] = []
    assert not stop_sweeps(make_backend("local"), PLAN, target="l1", on_stopped=said.append)
    assert said == []

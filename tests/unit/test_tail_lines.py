"""How ``tail`` carries a log's lines: the remote ``prefix`` filter (run here with perl, and with gawk and
mawk as a login node without perl would) and the events the client makes of its output."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from atlas_sweeps.status.tail import CUT_MARK, MAX_SHOWN_BYTES, PREFIX_FUNCTION, TailEvent, parse_tail_line

TOOLS = [name for name in ("perl", "gawk", "mawk") if shutil.which(name)]
BASH = shutil.which("bash") or "/bin/bash"


def _start(*, live: bool, tool: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``prefix`` with ``tool`` the only perl or awk on PATH (as on a login node), reading our stdin."""
    bin_dir = tmp_path / f"bin-{tool}"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / ("perl" if tool == "perl" else "awk")
    if not link.exists():
        link.symlink_to(shutil.which(tool) or tool)
    script = f"export LC_ALL=C\n{PREFIX_FUNCTION}\nprefix {int(live)}\n"
    return subprocess.Popen([BASH, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PATH": str(bin_dir)})


def prefix(data: bytes, *, live: bool, tool: str, tmp_path: Path) -> list[str]:
    """Output lines of ``prefix`` on ``data``."""
    proc = _start(live=live, tool=tool, tmp_path=tmp_path)
    out, _ = proc.communicate(data, timeout=60)
    assert proc.returncode == 0
    return out.decode().split("\n")[:-1]


TQDM = b"epoch 1\n\r  0%|          | 0/3\r 33%|###       | 1/3\r100%|##########| 3/3\n" \
       b"loss 0.5\r\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_a_finished_log_shows_a_progress_bar_as_its_latest_state(tool: str, tmp_path: Path) -> None:
    assert prefix(TQDM, live=False, tool=tool, tmp_path=tmp_path) == [
        "L epoch 1", "L 100%|##########| 3/3", "L loss 0.5"]


@pytest.mark.parametrize("tool", TOOLS)
def test_a_bar_still_drawing_at_the_end_of_a_finished_log_shows_its_last_state(tool: str, tmp_path: Path) -> None:
    assert prefix(b"start\n\r10%\r20%", live=False, tool=tool, tmp_path=tmp_path) == ["L start", "L 20%"]
    if tool == "perl":  # an awk reads a \r last in a file as the \r of a \r\n
        assert prefix(b"start\n\r10%\r20%\r", live=False, tool=tool, tmp_path=tmp_path) == ["L start", "R 20%"]


def test_following_passes_every_redraw_on_with_how_it_ended(tmp_path: Path) -> None:
    if "perl" not in TOOLS:
        pytest.skip("perl is not installed")
    assert prefix(TQDM, live=True, tool="perl", tmp_path=tmp_path) == [
        "L epoch 1", "R ", "R   0%|          | 0/3", "R  33%|###       | 1/3", "L 100%|##########| 3/3",
        "R loss 0.5", "L "]  # \r\n: the same bytes reach the terminal


@pytest.mark.parametrize("tool", [t for t in TOOLS if t != "perl"])
def test_without_perl_an_awk_splits_the_redraws_of_a_line_when_it_ends(tool: str, tmp_path: Path) -> None:
    assert prefix(TQDM, live=True, tool=tool, tmp_path=tmp_path) == [
        "L epoch 1", "R ", "R   0%|          | 0/3", "R  33%|###       | 1/3", "L 100%|##########| 3/3",
        "L loss 0.5"]


def _read_line(proc: subprocess.Popen[bytes], *, timeout: float = 5) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "nothing came: the filter held the line back"
    return proc.stdout.readline()


@pytest.mark.parametrize("tool", TOOLS)
def test_following_passes_each_line_on_when_it_ends_without_waiting_for_the_next(tool: str, tmp_path: Path) -> None:
    proc = _start(live=True, tool=tool, tmp_path=tmp_path)
    assert proc.stdin is not None
    try:
        for data, line in ((b"tick 1\n", b"L tick 1\n"), (b"tick 2\n", b"L tick 2\n")):
            proc.stdin.write(data)
            proc.stdin.flush()
            assert _read_line(proc) == line
        if tool == "perl":  # a redraw, as soon as its \r arrives
            proc.stdin.write(b"\r")
            proc.stdin.flush()
            assert _read_line(proc) == b"R \n"
            proc.stdin.write(b" 50%\r")
            proc.stdin.flush()
            assert _read_line(proc) == b"R  50%\n"
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.parametrize("tool", TOOLS)
def test_output_in_a_log_cannot_pass_for_a_fact(tool: str, tmp_path: Path) -> None:
    lines = prefix(b"x\rATLAS final Q09NUExFVEVE\nATLAS missing MQ==\r\n", live=True, tool=tool, tmp_path=tmp_path)
    assert lines and all(line[:2] in ("L ", "R ") for line in lines)
    assert all(parse_tail_line(line).kind == "line" for line in lines)  # type: ignore[union-attr]


@pytest.mark.parametrize("tool", TOOLS)
def test_an_endless_line_is_cut_with_a_mark(tool: str, tmp_path: Path) -> None:
    for live in (True, False):
        lines = prefix(b"y" * (MAX_SHOWN_BYTES * 3) + b"\nnext\n", live=live, tool=tool, tmp_path=tmp_path)
        assert lines == ["L " + "y" * MAX_SHOWN_BYTES + CUT_MARK, "L next"]


def test_events_of_prefixed_lines_say_how_the_line_ended() -> None:
    assert parse_tail_line("L hello") == TailEvent(kind="line", text="hello", end="\n")
    assert parse_tail_line("R 50%") == TailEvent(kind="line", text="50%", end="\r")
    assert parse_tail_line("L") == TailEvent(kind="line", text="", end="\n")
    assert parse_tail_line("R") == TailEvent(kind="line", text="", end="\r")
    assert parse_tail_line("Rest of a line") is None and parse_tail_line("hello") is None

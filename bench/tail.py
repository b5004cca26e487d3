"""Benchmark of ``tail`` on output without newlines: 32 MB of progress-bar redraws (``\\r`` only, as tqdm
writes them) and 32 MB of one endless line, streamed through ``stream_script`` on this host (LocalRemote) and
over the sandbox's SSH, raw and through tail's own filter; then ``atlas-sweeps tail`` of a finished sandbox
job whose log is 32 MB of redraws, end to end. Prints a markdown table.

    .venv/bin/python bench/tail.py          (the SSH rows need the sandbox: atlas-sweeps sandbox up)
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv" / "bin" / "atlas-sweeps")
SIZE = 32 * 1024 * 1024
SEGMENT = 100  # bytes per redraw: about a tqdm bar

# Bash that writes SIZE bytes to $out: redraws ("\r" + 99 characters) or one line with no end at all.
WRITE = {
    "redraws": (f"awk -v n={SIZE // SEGMENT} 'BEGIN {{ s = sprintf(\"%99s\", \"\"); gsub(/ /, \"#\", s); "
                "for (i = 0; i < n; i++) printf \"\\r%s\", s }' > \"$out\""),
    "one line": f"head -c {SIZE} /dev/zero | tr '\\0' x > \"$out\"",
}


def timed(action: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    count = action()
    return time.perf_counter() - start, count


def stream_rows(remote: object, where: str, workdir: str) -> list[tuple[str, str, float, int]]:
    """(transport, what, seconds, lines seen) for each kind of output, raw and through tail's filter."""
    from atlas_sweeps.remote.protocol import EMIT_FUNCTION
    from atlas_sweeps.status.tail import PREFIX_FUNCTION, follow

    rows = []
    for kind, write in WRITE.items():
        out = f"{workdir}/{kind.replace(' ', '_')}.log"
        remote.run_script(f"out={shlex.quote(out)}; mkdir -p {shlex.quote(workdir)}; {write}",  # type: ignore[attr-defined]
                          timeout=300).check(what="writing the sample log")
        seen: list[str] = []

        def raw(path: str = out, seen: list[str] = seen) -> int:
            seen.clear()
            remote.stream_script(f"cat {shlex.quote(path)}", on_stdout=seen.append)  # type: ignore[attr-defined]
            return len(seen)

        rows.append((where, f"{kind}: stream_script, raw", *timed(raw)))
        for live in (0, 1):
            script = f"export LC_ALL=C\n{EMIT_FUNCTION}\n{PREFIX_FUNCTION}\nprefix {live} < {shlex.quote(out)}\n"
            events: list[object] = []

            def through_tail(script: str = script, events: list[object] = events) -> int:
                events.clear()
                follow(remote, script, on_event=events.append)
                return len(events)

            what = "followed (prefix 1)" if live else "finished log (prefix 0)"
            rows.append((where, f"{kind}: tail filter, {what}", *timed(through_tail)))
        remote.run_script(f"rm -f {shlex.quote(out)}", timeout=60)  # type: ignore[attr-defined]
    return rows


def cli_tail_row(profile: str) -> tuple[str, str, float, int]:
    """``atlas-sweeps tail`` of a finished sandbox job whose whole log is 32 MB of redraws, then ``done``."""
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.remote import open_remote

    remote = open_remote(load_profile(profile, project_dir=ROOT))
    try:
        job = WRITE["redraws"].replace(' > "$out"', "") + "; printf '\\ndone\\n'"
        submitted = remote.run_script(f"sbatch --parsable --output=\"$HOME/bench-tail-%j.out\" --wrap={shlex.quote(job)}",
                                      timeout=60).check(what="sbatch")
        job_id = submitted.stdout.strip().split(";")[0]
        remote.run_script(f"while squeue -h -j {job_id} 2>/dev/null | grep -q .; do sleep 0.5; done", timeout=300)
    finally:
        remote.close()
    # A job the state database does not know: tail asks scontrol where its log is (as for any job id).
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": tempfile.mkdtemp(prefix="bench-tail-")}
    start = time.perf_counter()
    done = subprocess.run([CLI, "tail", job_id, "--cluster", profile, "-n", "10"], env=env, capture_output=True,
                          timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not done.stdout.endswith(b"done\n"):
        print(f"tail of job {job_id} failed ({done.returncode}): {done.stderr.decode()[-300:]}", file=sys.stderr)
    remote = open_remote(load_profile(profile, project_dir=ROOT))
    try:
        remote.run_script(f"rm -f \"$HOME/bench-tail-{job_id}.out\"", timeout=60)
    finally:
        remote.close()
    return ("sandbox SSH", "atlas-sweeps tail -n 10 of a finished job (whole CLI)", seconds,
            done.stdout.count(b"\n"))


def main() -> None:
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.remote import LocalRemote, open_remote

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-tail-") as tmp:
        rows += stream_rows(LocalRemote(), "this host (LocalRemote)", tmp)
    if "--no-ssh" not in sys.argv:
        remote = open_remote(load_profile("sandbox", project_dir=ROOT))
        try:
            rows += stream_rows(remote, "sandbox SSH", "bench-tail")
        finally:
            remote.close()
        rows.append(cli_tail_row("sandbox"))
    print(f"32 MB ({SIZE:,} bytes) without newlines: redraws are {SIZE // SEGMENT:,} segments of {SEGMENT} bytes\n")
    print("| transport | what | seconds | lines or events |\n| --- | --- | ---: | ---: |")
    for where, what, seconds, count in rows:
        print(f"| {where} | {what} | {seconds:.2f} | {count:,} |")


if __name__ == "__main__":
    main()

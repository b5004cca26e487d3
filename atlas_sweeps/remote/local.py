"""``LocalRemote``: the ``Remote`` seam on this machine via subprocess, for users already on the login node
and for tests. Scripts run with ``bash -s`` in the home directory, as they would over SSH."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from atlas_sweeps.errors import RemoteError
from atlas_sweeps.remote.base import CallCounter, LineSplitter, Result, wrap_for_streaming

_SECRET_VARIABLES = frozenset({"WANDB_API_KEY"})


class LocalRemote(CallCounter):
    """Runs everything on this host. ``calls`` counts scripts, streams and rsyncs like ``SshRemote``."""

    def __init__(self, *, home: Path | None = None) -> None:
        self._home = home or Path.home()
        # Scripts see ``home`` as $HOME, so ``~/`` paths mean the same in scripts and in rsync_path.
        # Jobs inherit sbatch's environment: secrets of this process must not travel with them.
        self._env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARIABLES} | {"HOME": str(self._home)}
        CallCounter.__init__(self)

    def run_script(self, script: str, *, timeout: float | None = None) -> Result:
        self._count()
        try:
            done = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True,
                                  cwd=self._home, env=self._env, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"script on this host timed out after {timeout:g} s",
                              hint="raise the timeout or check the login node's load") from exc
        return Result(command=script, exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr)

    def stream_script(self, script: str, *, on_stdout: Callable[[str], None],
                      stop: threading.Event | None = None) -> int:
        self._count()
        proc = subprocess.Popen(["bash", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd=self._home, env=self._env,
                                start_new_session=True)
        return stream_process(proc, script, on_stdout=on_stdout, stop=stop, stopper=_stop_when_set)

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        self._count()
        return run_rsync(["rsync", *args], env=None, on_progress=on_progress)

    def rsync_path(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            path = path[2:]
        return str(self._home / path) + ("/" if path.endswith("/") else "")

    def describe(self) -> str:
        return "this machine, no SSH"

    def close(self) -> None:
        pass


def stream_process(proc: subprocess.Popen[bytes], script: str, *, on_stdout: Callable[[str], None],
                   stop: threading.Event | None,
                   stopper: Callable[[threading.Event, subprocess.Popen[bytes]], None]) -> int:
    """Send ``script`` (wrapped, stdin left open) to a started ``bash -s`` process, pass each output line to
    ``on_stdout`` until it ends, and run ``stopper`` in a thread when ``stop`` is given; -1 if stopped."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(wrap_for_streaming(script).encode())
    proc.stdin.flush()
    if stop is not None:
        threading.Thread(target=stopper, args=(stop, proc), daemon=True).start()
    splitter = LineSplitter()
    try:
        while chunk := proc.stdout.read1(65536):
            for line in splitter.feed(chunk):
                on_stdout(line)
        for line in splitter.close():
            on_stdout(line)
        code = proc.wait()
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # end-of-input tells the wrapper's watcher to clean up
        proc.stdout.close()
    return -1 if stop is not None and stop.is_set() else code


def _stop_when_set(stop: threading.Event, proc: subprocess.Popen[bytes]) -> None:
    while proc.poll() is None:
        if stop.wait(0.2):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, 15)
            return


def run_rsync(argv: list[str], *, env: dict[str, str] | None,
              on_progress: Callable[[str], None] | None) -> Result:
    """Run a local rsync, passing each progress line (rsync ends them with CR or LF) to ``on_progress``."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise RemoteError("rsync is not installed on this machine", hint="install rsync (apt-get install rsync)") from exc
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    out = bytearray()
    splitter = LineSplitter()

    def progress(lines: list[str]) -> None:
        for line in lines:
            if on_progress is not None and line.strip():
                on_progress(line.strip())

    while chunk := proc.stdout.read1(65536):
        out += chunk
        progress(splitter.feed(chunk))
    code = proc.wait()
    reader.join()
    progress(splitter.close())
    return Result(command=" ".join(argv), exit_code=code, stdout=out.decode(errors="replace"),
                  stderr=b"".join(errors).decode(errors="replace"))

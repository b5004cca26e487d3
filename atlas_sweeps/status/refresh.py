"""How ``status`` refreshes: the interval between polls (and tail's), the backoff after failures, and the
three ways to show them: once, waiting until every job has finished, and a live display. Pure apart from
what is passed in: the poller, the consoles and the clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from rich.console import Console, RenderableType

from atlas_sweeps.config.profile import STATUS_INTERVAL_FLOOR
from atlas_sweeps.state.store import LaunchRecord
from atlas_sweeps.status.model import StatusSnapshot

MAX_BACKOFF = 60.0
DEFAULT_INTERVAL = 15.0
TAIL_INTERVAL = 5.0  # tail checks a job's state at least this often (never below the floor)


def backoff_delay(failures: int, *, interval: float) -> float:
    """Seconds before the next try after ``failures`` failed polls in a row: doubling, capped."""
    if failures <= 0:
        return interval
    return min(interval * (2 ** failures), max(MAX_BACKOFF, interval))


def refresh_interval(requested: float | None, *, profile: Callable[[], float]) -> float:
    """Seconds between refreshes: ``--interval``, else the profiles' ``status_interval``; never below the floor."""
    return max(STATUS_INTERVAL_FLOOR, requested if requested is not None else profile())


def tail_interval(profile_interval: float) -> float:
    """Seconds between tail's checks of the job's state."""
    return max(STATUS_INTERVAL_FLOOR, min(profile_interval, TAIL_INTERVAL))


class Poll(Protocol):
    """What the loops need of a ``Poller``."""

    def poll(self, launches: list[LaunchRecord]) -> StatusSnapshot: ...


@dataclass(frozen=True)
class Clock:
    """Wall time (shown and scheduled), a monotonic time (deadlines) and sleep: passed in, so tests need
    not wait."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Screens:
    """Where the loops write: ``out`` for the table, ``err`` for progress, ``echo`` for JSON (stdout)."""

    out: Console
    err: Console
    echo: Callable[[str], None]


def show(snapshot: StatusSnapshot, *, screens: Screens, as_json: bool) -> None:
    """The whole snapshot: the JSON document, or the table uncropped (a narrow terminal or pipe wraps a
    large launch's plain rows rather than losing columns)."""
    from atlas_sweeps.status.document import status_document
    from atlas_sweeps.status.view import render_status

    if as_json:
        screens.echo(json.dumps(status_document(snapshot), indent=2))
    else:
        screens.out.print(render_status(snapshot, live=False), crop=False)


def _stop_if_fatal(snapshot: StatusSnapshot) -> None:
    """Raise the poll's error when retrying cannot fix it (changed host key, refused login): the CLI prints
    it and exits with its code. Connection failures that may pass are retried instead."""
    if snapshot.fatal is not None:
        raise snapshot.fatal


def once(poller: Poll, launches: list[LaunchRecord], *, screens: Screens, as_json: bool) -> int:
    """One refresh, shown; 1 when it failed."""
    snapshot = poller.poll(launches)
    show(snapshot, screens=screens, as_json=as_json)
    _stop_if_fatal(snapshot)
    return 1 if snapshot.error else 0


def wait(poller: Poll, launches: list[LaunchRecord], *, every: float, timeout: float | None, screens: Screens,
         as_json: bool, clock: Clock = Clock()) -> int:
    """Poll until every job has finished (progress on ``err`` when it changes), then show the final
    snapshot: 0 when every job completed, 1 otherwise or when ``timeout`` passes first."""
    from atlas_sweeps.status.view import progress_text

    deadline = None if timeout is None else clock.monotonic() + timeout
    failures = 0
    last_line = None
    while True:
        snapshot = poller.poll(launches)
        _stop_if_fatal(snapshot)
        failures = failures + 1 if snapshot.error else 0
        line = progress_text(snapshot.counts).plain + (f"  ({snapshot.error}; retrying)" if snapshot.error else "")
        if line != last_line:
            stamp = time.strftime("%H:%M:%S", time.localtime(clock.now()))
            screens.err.print(f"[dim]{stamp}[/] {line}", highlight=False)
            last_line = line
        if not snapshot.error and all(s.finished for s in snapshot.launches):
            show(snapshot, screens=screens, as_json=as_json)
            counts = snapshot.counts
            return 0 if counts["done"] == counts["total"] else 1
        delay = backoff_delay(failures, interval=every)
        if deadline is not None and clock.monotonic() + delay > deadline:
            show(snapshot, screens=screens, as_json=as_json)
            screens.err.print(f"[red]timed out[/] after {timeout:g} s with jobs unfinished: "
                              f"{progress_text(snapshot.counts).plain}")
            return 1
        clock.sleep(delay)


def live(poller: Poll, launches: list[LaunchRecord], *, every: float, screens: Screens,
         clock: Clock = Clock()) -> int:
    """A live table, refreshed every ``every`` seconds (backing off after failures) until Ctrl-C."""
    from rich.live import Live

    from atlas_sweeps.status.view import render_status

    out = screens.out
    failures = 0
    snapshot = poller.poll(launches)  # before the live display: a password prompt must not fight it
    _stop_if_fatal(snapshot)

    def view(snap: StatusSnapshot) -> RenderableType:
        rows = max(5, out.size.height - 6 * len(snap.launches) - 4)
        return render_status(snap, live=True, max_rows=rows)

    try:
        with Live(console=out, auto_refresh=False, transient=False, redirect_stdout=False,
                  redirect_stderr=False) as display:
            while True:
                failures = failures + 1 if snapshot.error else 0
                next_refresh = clock.now() + backoff_delay(failures, interval=every)
                snapshot = replace(snapshot, failures=failures, next_refresh=next_refresh)
                while clock.now() < next_refresh:
                    display.update(view(snapshot), refresh=True)
                    clock.sleep(min(1.0, max(0.05, next_refresh - clock.now())))
                snapshot = poller.poll(launches)
                display.update(view(snapshot), refresh=True)
                _stop_if_fatal(snapshot)
    except KeyboardInterrupt:
        screens.err.print("stopped")
        return 0

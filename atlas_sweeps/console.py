"""The two rich consoles: results on stdout, progress and messages on stderr. rich honours ``NO_COLOR``
and drops color and live displays when the stream is not a terminal."""

from __future__ import annotations

from functools import cache

from rich.console import Console


@cache
def out() -> Console:
    """stdout: tables, results, JSON."""
    return Console(soft_wrap=True)


@cache
def err() -> Console:
    """stderr: progress, notices, errors."""
    return Console(stderr=True)


class Steps:
    """Progress of a long command on stderr: a spinner on the current step on a terminal, finished steps
    printed as they complete; plain lines in a pipe or log file."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or err()
        self._status = None
        self._current: str | None = None

    def __enter__(self) -> Steps:
        if self.console.is_terminal:
            self._status = self.console.status("starting")
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()
        if self._current and exc[0] is None:
            self._done()

    def _done(self) -> None:
        if self._status is not None and self._current:
            self.console.print(f"[green]✓[/] {self._current}", highlight=False)

    def step(self, message: str) -> None:
        """A new step begins (the previous one is done)."""
        self._done()
        self._current = message
        if self._status is not None:
            self._status.update(message)
        else:
            self.console.print(f"· {message}", highlight=False)

    def detail(self, text: str) -> None:
        """A progress detail of the current step (rsync's progress line): shown on the spinner only."""
        if self._status is not None and self._current and text.strip():
            self._status.update(f"{self._current}  [dim]{text.strip()[:80]}[/]")

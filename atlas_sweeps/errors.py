"""The small exception tree. The CLI maps these to exit codes and one-line messages in one place."""

from __future__ import annotations

from collections.abc import Sequence


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """The hint for an unknown key: the closest known one, else the list of known ones."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(choices)


class AtlasError(Exception):
    """Base of every error the tool reports to a user. ``exit_code`` is what the CLI exits with;
    ``retryable`` says whether trying the same thing again later may succeed (``status`` retries those)."""

    exit_code = 1
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(AtlasError):
    """Bad input from the user: flags, arguments, profiles. Exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A problem in a file the user wrote; says where (file:line) it is."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return where + super().__str__()


class RemoteError(AtlasError):
    """The cluster or the connection to it failed (refused, dropped, timed out); may pass. Exit code 1."""

    retryable = True


class HostKeyError(RemoteError):
    """The login node's host key is unknown or changed; refused under strict checking. Exit code 2."""

    exit_code = 2
    retryable = False


class AuthError(RemoteError):
    """The login node refused the login, or it needs a password or passphrase no one can type here.
    Waiting will not change that. Exit code 2."""

    exit_code = 2
    retryable = False


class StateError(AtlasError):
    """The local state database cannot be used (damaged, locked, or from a newer version). Exit code 1."""


class BackendError(AtlasError):
    """The sweep backend (W&B or local) failed."""


class SandboxError(AtlasError):
    """The sandbox cluster could not be brought up, stopped or inspected."""


class Interrupted(AtlasError):
    """The user pressed Ctrl-C; exit code 130 as a shell would give."""

    exit_code = 130


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` may pass if the same thing is tried again: our errors say so themselves; anything
    else (a socket or SSH library error that escaped) counts as a connection problem, as before."""
    return exc.retryable if isinstance(exc, AtlasError) else True

"""Pytest plugin (test infrastructure) for the W&B stand-in: `wandb_standin` (one server per session)
and `wandb_env` (the environment a subprocess needs to use it with the real wandb client)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standin.server import StandinServer, start_standin


@pytest.fixture(scope="session")
def wandb_standin() -> Iterator[StandinServer]:
    """A W&B stand-in on 127.0.0.1 (free port), shared by the session; state accumulates across tests,
    so use a fresh project name per test."""
    server = start_standin()
    try:
        yield server
    finally:
        server.stop()


def standin_env(server: StandinServer, base_dir: Path) -> dict[str, str]:
    """The WANDB_* variables pointing the real client at `server`, with its dirs under `base_dir`."""
    dirs = {
        name: base_dir / sub
        for name, sub in (
            ("WANDB_DIR", "wandb-dir"),
            ("WANDB_CONFIG_DIR", "wandb-config"),
            ("WANDB_CACHE_DIR", "wandb-cache"),
        )
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return {
        "WANDB_BASE_URL": server.base_url,
        "WANDB_API_KEY": server.api_key,
        "WANDB_ENTITY": server.entity,
        "WANDB_ERROR_REPORTING": "false",
        "WANDB__GRAPHQL_RETRY_MAX": "1",
        "WANDB_HTTP_TIMEOUT": "10",
        "WANDB_SILENT": "true",
        **{name: str(path) for name, path in dirs.items()},
    }


@pytest.fixture
def wandb_env(wandb_standin: StandinServer, tmp_path: Path) -> dict[str, str]:
    """A complete environment for a subprocess using the stand-in: this process's environment without
    any WANDB_* of the developer's, plus `standin_env`, with this interpreter's bin dir first on PATH
    (the agent starts runs with a bare `python`, which must be one that has wandb)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(standin_env(wandb_standin, tmp_path))
    return env

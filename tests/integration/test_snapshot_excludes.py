"""A launch from a subdirectory of a git repository uploads exactly what git does not ignore: the root's
.gitignore, .git/info/exclude and nested rules all apply (rsync's own .gitignore filter would see only the
files inside the synced directory, and upload a .env that git ignores at the root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import make_workspace


def test_launch_from_a_repo_subdirectory_uploads_nothing_git_ignores(sandbox: SandboxCluster, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, sandbox)
    repo = tmp_path / "repo"
    code = repo / "experiments" / "exp1"
    code.parent.mkdir(parents=True)
    ws.project.rename(code)
    ws.project = code
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".env\n*.ckpt\n")
    (repo / ".git" / "info" / "exclude").write_text("notes-private.md\n")
    (code / "outputs").mkdir()
    (code / ".gitignore").write_text("outputs/\n")
    for name in (".env", "model.ckpt", "notes-private.md", "outputs/run1.log", "helper.py"):
        (code / name).write_text("WANDB_API_KEY=secret\n" if name == ".env" else "x\n")
    result = ws.launch_json("simple_grid", "--cluster", "sandbox")
    listing = set(ws.ssh(f"cd {result['snapshot']} && find . -mindepth 1 | sort").split())
    assert {"./main.py", "./helper.py", "./simple_grid.yml", "./.gitignore"} <= listing
    assert not listing & {"./.env", "./model.ckpt", "./notes-private.md", "./outputs", "./outputs/run1.log"}, listing

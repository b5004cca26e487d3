"""A cloned repository's project file on the sandbox: its connection settings and hostile templates are refused
before any SSH connection is made; the job options it may set reach the real job script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import make_workspace


def test_project_file_connects_nowhere_and_adds_only_job_options(sandbox: SandboxCluster, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, sandbox)
    project_file = ws.project / "atlas-sweeps.toml"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    key = (tmp_path / "k.pub").read_text().split()
    (ws.project / "known_hosts").write_text(f"[127.0.0.1]:{sandbox.port} {key[0]} {key[1]}\n")  # shipped
    canary = tmp_path / "CANARY"
    (ws.project / "job.sbatch.j2").write_text(
        f"#!/bin/bash\n{{{{ cycler.__init__.__globals__.os.system('touch {canary}') }}}}\n{{{{ run_command }}}}\n")
    mark = sandbox.sshd_log.stat().st_size
    for text, expected in [
        ('[clusters.sandbox]\nknown_hosts = "known_hosts"\n', f"{project_file}:2: cluster 'sandbox': a project "
                                                               "file may not set known_hosts"),
        ('[clusters.sandbox]\ntemplate = "job.sbatch.j2"\n', "job.sbatch.j2:2: template refused by Jinja2's sandbox"),
    ]:
        project_file.write_text(text)
        result = ws.cli("launch", "composite_grid", "--cluster", "sandbox", check=False)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
    with sandbox.sshd_log.open() as log:
        log.seek(mark)
        assert f"for {sandbox.user}" not in log.read()  # no connection was even attempted
    assert not canary.exists()

    project_file.write_text('[clusters.sandbox.slurm]\nextra = ["--comment=from-the-project"]\n')
    result = ws.cli("launch", "composite_grid", "--cluster", "sandbox", "--json")
    assert f"note: the project file {project_file} sets slurm.extra for cluster 'sandbox'" in result.stderr
    doc = json.loads(result.stdout)
    job = doc["sweeps"][0]["jobs"][0]
    assert "#SBATCH --comment=from-the-project\n" in ws.ssh(f"cat {job['script']}")
    assert "from-the-project" in ws.ssh(f"scontrol show job {job['job_id']} 2>/dev/null || "
                                        f"sacct -n -P -o Comment -j {job['job_id']}")
    ws.cli("cancel", doc["launch"], "--yes")
    with sandbox.sshd_log.open() as log:
        log.seek(mark)
        assert f"Accepted publickey for {sandbox.user}" in log.read()  # the log shows connections: see above

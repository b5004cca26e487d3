"""Benchmark: code snapshots through the one SSH session on the sandbox cluster: a first sync of 2,000 files
(20 MB), a no-change snapshot (hard links to the first), and a bare no-change rsync for comparison.

    .venv/bin/python bench/snapshot.py      (the sandbox must be up: atlas-sweeps sandbox up)"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from atlas_sweeps.config.profile import load_profile
from atlas_sweeps.remote import open_remote
from atlas_sweeps.remote.snapshot import sync_snapshot


def main() -> None:
    profile = load_profile("sandbox", project_dir=Path.cwd())
    root = f"bench-snapshot-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        for d in range(40):
            (project / f"d{d}").mkdir()
            for f in range(50):
                (project / f"d{d}" / f"f{f}.py").write_bytes(os.urandom(10_000))
        remote = open_remote(profile)
        try:
            start = time.perf_counter()
            first = sync_snapshot(remote, local_dir=project, remote_root=f"~/{root}", snapshot_name="a",
                                  previous=None, excludes=[])
            full = time.perf_counter() - start
            start = time.perf_counter()
            again = sync_snapshot(remote, local_dir=project, remote_root=f"~/{root}", snapshot_name="b",
                                  previous="a", excludes=[])
            nochange = time.perf_counter() - start
            start = time.perf_counter()
            remote.rsync(["-a", f"{project}/", remote.rsync_path(f"{root}/snapshots/a/")])
            bare = time.perf_counter() - start
            remote.run_script(f'chmod -R u+w ~/{root} && rm -rf ~/{root}')
        finally:
            remote.close()
    assert first.files_transferred == 2000 and again.files_transferred == 0
    print("| snapshot | wall time |")
    print("|---|---|")
    print(f"| first, 2,000 files / 20 MB | {full:.2f} s |")
    print(f"| no change (hard links, 3 round trips) | {nochange:.2f} s |")
    print(f"| bare no-change rsync through the session | {bare:.2f} s |")


if __name__ == "__main__":
    main()

"""What a cluster offers, learnt in ONE remote call (pure script + parser): partitions with their time limits
and GPUs (sinfo), the user's Slurm accounts and QOS (sacctmgr, where allowed), MaxArraySize, whether
accounting works (sacct), rsync's version, which Python, venv, conda and ``module`` exist, and, for
``doctor``, each of the profile's set-up lines, the interpreter after them, a job script ``sbatch
--test-only`` accepts, and the W&B login; optionally a tiny job that says whether compute nodes reach W&B."""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field

from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts

# Where a cluster user's own virtualenv usually is, to propose as a set-up line.
VENV_PLACES = ("venv", ".venv", "env", ".virtualenvs/default")
COMMANDS = ("python", "python3", "conda", "apptainer", "singularity", "wandb", "rsync", "sbatch")


@dataclass(frozen=True)
class Partition:
    """One partition as ``sinfo`` shows it."""

    name: str
    default: bool
    time_limit: str  # Slurm's text: "infinite", "2-00:00:00", ...
    default_time: str  # "n/a" when the partition sets none
    gres: str  # "(null)" or e.g. "gpu:a100:4"
    up: bool

    @property
    def gpus(self) -> int:
        """GPUs per node in its gres (``gpu:a100:4`` → 4, ``gpu:2`` → 2), 0 without."""
        total = 0
        for item in self.gres.split(","):
            parts = item.split("(")[0].split(":")
            if parts[0] == "gpu":
                total += int(parts[-1]) if parts[-1].isdigit() else 1
        return total


@dataclass(frozen=True)
class ClusterFacts:
    """The probe's answer. ``setup_failed`` is the index of the first failing set-up line (doctor)."""

    home: str = ""
    partitions: tuple[Partition, ...] = ()
    accounts: tuple[str, ...] = ()
    default_account: str | None = None
    qos: tuple[str, ...] = ()
    max_array_size: int | None = None
    slurm_version: str | None = None
    accounting: bool | None = None
    accounting_error: str = ""
    rsync: str = ""
    commands: dict[str, str] = field(default_factory=dict)  # name -> path, for those found
    module: bool = False
    venvs: tuple[str, ...] = ()  # activate scripts found, as ~/... paths
    setup_failed: int | None = None
    setup_error: str = ""
    interpreter: str | None = None  # its path after the set-up lines (doctor)
    test_only: str | None = None  # sbatch --test-only's complaint, "" when it accepted the script
    wandb_problems: tuple[str, ...] = ()
    compute_wandb: bool | None = None  # None: not probed
    compute_detail: str = ""
    complete: bool = False

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions if p.default), self.partitions[0] if self.partitions else None)

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)


def probe_script(*, setup: tuple[str, ...] = (), interpreter: str | None = None, test_script: str | None = None,
                 wandb_checks: tuple[str, ...] = (), compute_url: str | None = None,
                 compute_partition: str | None = None) -> str:
    """The bash script of the one probe call. ``setup`` lines run one by one (the first failing one is
    named); ``compute_url``, when given, is fetched from a compute node by a one-minute ``sbatch --wait`` job."""
    lines = [
        EMIT_FUNCTION,
        "export LC_ALL=C",
        'emit home "$HOME"',
        "emit partitions \"$(sinfo -h -o '%P|%l|%L|%G|%a' 2>&1)\"",
        'me=$(id -un)',
        'emit assoc "$(sacctmgr -nP show assoc where user="$me" format=account,qos 2>/dev/null)"',
        'emit default_account "$(sacctmgr -nP show user "$me" format=defaultaccount 2>/dev/null)"',
        "emit config \"$(scontrol show config 2>/dev/null | grep -iE '^(MaxArraySize|SLURM_VERSION)')\"",
        'if out=$(sacct -X -n -S now-1hours -o JobID 2>&1 >/dev/null); then emit accounting yes; '
        'else emit accounting "no $out"; fi',
        'emit rsync "$(rsync --version 2>/dev/null | head -n 1)"',
        *(f'emit command:{name} "$(command -v {name} 2>/dev/null)"' for name in COMMANDS),
        'if type module >/dev/null 2>&1; then emit module yes; fi',
        *(f'[ -f "$HOME/{place}/bin/activate" ] && emit venv "~/{place}/bin/activate"' for place in VENV_PLACES),
    ]
    if setup or interpreter:
        # Each set-up line in turn, in one subshell as a job runs them; the first that fails is named.
        lines += [
            'errf=$(mktemp)',
            "(",
            "  exec 3>&1 1>/dev/null 2>\"$errf\"",
            '  say() { printf >&3 \'ATLAS %s %s\\n\' "$1" "$(printf \'%s\' "$2" | base64 | tr -d \'\\n\')"; }',
        ]
        for index, line in enumerate(setup):
            lines += [f"  {line}", f'  rc=$?; if [ "$rc" -ne 0 ]; then say setup_failed "{index} $rc"; exit 0; fi']
        if interpreter:
            lines.append(f"  say interpreter \"$(command -v {shlex.quote(interpreter)})\"")
        lines += [")", 'emit setup_error "$(tail -c 400 "$errf")"', 'rm -f "$errf"']
    if test_script is not None:
        lines += [
            'tmp=$(mktemp -d)',
            f"printf '%s' {base64.b64encode(test_script.encode()).decode()} | base64 -d > \"$tmp/test.sbatch\"",
            'if out=$(cd "$tmp" && sbatch --test-only --output=/dev/null "$tmp/test.sbatch" 2>&1); '
            'then emit test_only ""; else emit test_only "${out:-rejected}"; fi',
            'rm -rf "$tmp"',
        ]
    lines += list(wandb_checks)
    if compute_url:
        fetch = (f"python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "
                 f"{shlex.quote(compute_url)}")
        where = f" -p {shlex.quote(compute_partition)}" if compute_partition else ""
        lines += [
            'out=$(mktemp)',
            f"if sbatch --wait --quiet -t 00:02:00 -J atlas-probe{where} -o \"$out\" --wrap {shlex.quote(fetch)} "
            '>/dev/null 2>"$out.err"; then emit compute yes; else emit compute "no $(tail -c 300 "$out" "$out.err" '
            '2>/dev/null | tr -s "\\n" " ")"; fi',
            'rm -f "$out" "$out.err"',
        ]
    lines.append("emit complete yes")
    return "\n".join(lines) + "\n"


def parse_probe(stdout: str) -> ClusterFacts:
    """The facts of ``probe_script``'s answer (absent ones keep their defaults)."""
    values: dict[str, str] = {}
    commands: dict[str, str] = {}
    venvs: list[str] = []
    problems: list[str] = []
    for key, value in parse_facts(stdout):
        if key.startswith("command:"):
            if value.strip():
                commands[key[8:]] = value.strip()
        elif key == "venv":
            venvs.append(value)
        elif key == "problem":
            problems.append(value)
        else:
            values[key] = value
    config = dict(_setting(line) for line in values.get("config", "").splitlines() if "=" in line)
    accounts, qos = _associations(values.get("assoc", ""))
    failed = values.get("setup_failed", "").split()
    accounting = values.get("accounting")
    compute = values.get("compute")
    return ClusterFacts(
        home=values.get("home", ""),
        partitions=tuple(p for p in map(_partition, values.get("partitions", "").splitlines()) if p),
        accounts=accounts, qos=qos, default_account=values.get("default_account", "").strip() or None,
        max_array_size=int(config["MaxArraySize"]) if config.get("MaxArraySize", "").isdigit() else None,
        slurm_version=config.get("SLURM_VERSION"),
        accounting=None if accounting is None else accounting == "yes",
        accounting_error=" ".join(accounting[3:].split()) if accounting and accounting != "yes" else "",
        rsync=values.get("rsync", "").strip(), commands=commands, module="module" in values,
        venvs=tuple(venvs), setup_failed=int(failed[0]) if failed and failed[0].isdigit() else None,
        setup_error=" ".join(values.get("setup_error", "").split()),
        interpreter=values.get("interpreter", "").strip() or None if "interpreter" in values else None,
        test_only=values.get("test_only"), wandb_problems=tuple(problems),
        compute_wandb=None if compute is None else compute == "yes",
        compute_detail=" ".join(compute[3:].split()) if compute and compute != "yes" else "",
        complete="complete" in values,
    )


def _setting(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.strip(), value.strip()


def _partition(line: str) -> Partition | None:
    cols = [c.strip() for c in line.split("|")]
    if len(cols) < 5 or not cols[0] or " " in cols[0]:
        return None  # sinfo's own error text, or an empty line
    name = cols[0].rstrip("*")
    return Partition(name=name, default=cols[0].endswith("*"), time_limit=cols[1], default_time=cols[2],
                     gres=cols[3], up=cols[4] == "up")


def _associations(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    accounts: list[str] = []
    qos: list[str] = []
    for line in text.splitlines():
        account, _, names = line.partition("|")
        if account.strip() and account.strip() not in accounts:
            accounts.append(account.strip())
        qos += [q for q in names.strip().split(",") if q and q not in qos]
    return tuple(accounts), tuple(qos)

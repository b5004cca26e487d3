"""Whether a W&B sweep has anything left for an agent to run, said in one pure function that both sides use:
``status`` reaps the pending agent tasks of sweeps that have nothing left (``status/reap.py``), and each
agent job asks the same question before it starts its agent (the bash/python gate here), so a job that
starts after its sweep finished exits 0 at once instead of waiting for the agent to find out. The gate
uses the cluster user's own credentials (``WANDB_API_KEY`` or their netrc entry): no key is sent."""

from __future__ import annotations

import shlex
from functools import lru_cache

# Exit code of the gate's python when the sweep has nothing left to run (0: start the agent).
NOTHING_LEFT = 3


def idle_reason(state: object, run_count: object, expected: object, *, restarted: bool = False) -> str:
    """Why an agent starting now would get no run from a sweep in ``state`` that has handed out
    ``run_count`` of its ``expected`` runs (grid size or run_cap; None when unbounded); "" when it may.
    A ``restarted`` agent task (requeued after a preemption or its time limit) is owed the run it was on,
    which W&B hands out again although it counts as handed out: only a sweep that ended stops it."""
    ended = {"FINISHED": "sweep finished", "CANCELED": "sweep cancelled", "CANCELLED": "sweep cancelled",
             "FAILED": "sweep failed", "CRASHED": "sweep crashed", "PAUSED": "sweep paused"}
    why = ended.get(str(state or "").upper())
    if why:
        return why
    if restarted:
        return ""
    if isinstance(expected, int) and isinstance(run_count, int) and 0 < expected <= run_count:
        return f"no runs left ({run_count} of {expected} handed out)"
    return ""


GATE_QUERY = ("query GetSweepState($entity: String, $project: String, $sweep: String!) { "
              "project(name: $project, entityName: $entity) { sweep(sweepName: $sweep) { "
              "state runCount runCountExpected } } }")

# Run on the compute node with the sweep path as its argument: exits NOTHING_LEFT when the sweep has nothing
# left to run, else 0; any failure of the check itself (network, no credentials, a refused query) says so on
# stderr and exits 0, so the agent starts as it would without the gate.
_GATE_MAIN = """
import base64, json, netrc, os, sys, urllib.request
from urllib.parse import urlsplit
path = sys.argv[1]
base = (os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").rstrip("/")
try:
    entity, project, sweep = path.split("/")
    key = os.environ.get("WANDB_API_KEY")
    if not key:
        auth = netrc.netrc(os.environ.get("NETRC") or None).authenticators(urlsplit(base).netloc)
        key = auth[2] if auth else None
    if not key:
        raise RuntimeError("no W&B credentials for " + base)
    body = json.dumps({"query": QUERY, "operationName": "GetSweepState",
                       "variables": {"entity": entity, "project": project, "sweep": sweep}}).encode()
    token = base64.b64encode(("api:" + key).encode()).decode()
    request = urllib.request.Request(base + "/graphql", data=body, headers={
        "Content-Type": "application/json", "Authorization": "Basic " + token})
    with urllib.request.urlopen(request, timeout=20) as answer:
        data = json.load(answer)
    node = ((data.get("data") or {}).get("project") or {}).get("sweep")
    if not node:
        raise RuntimeError("no such sweep: " + str(data.get("errors") or "")[:200])
    why = idle_reason(node.get("state"), node.get("runCount"), node.get("runCountExpected"),
                      restarted=os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0"))
except Exception as exc:
    print("atlas-sweeps: could not check W&B sweep %s (%s); starting the agent anyway" % (path, exc),
          file=sys.stderr)
    sys.exit(0)
if why:
    print("atlas-sweeps: W&B sweep %s: %s; nothing left to run, the agent is not started" % (path, why),
          file=sys.stderr)
    sys.exit(NOTHING_LEFT)
"""


@lru_cache(maxsize=1)
def gate_source() -> str:
    """The gate's python program: ``idle_reason`` itself (one definition) and the query."""
    import inspect  # only when a job is built: status stays fast

    return (f"QUERY = {GATE_QUERY!r}\nNOTHING_LEFT = {NOTHING_LEFT}\n"
            f"{inspect.getsource(idle_reason)}{_GATE_MAIN}")


def gate_lines(sweep_path: str, *, python: str) -> tuple[str, ...]:
    """Bash lines for the job's preamble: run the gate with ``python`` (a command prefix, already quoted
    where needed) and end the job with exit 0 when the sweep has nothing left to run."""
    return (
        f"atlas_gate=0; {python} -c {shlex.quote(gate_source())} {shlex.quote(sweep_path)} || atlas_gate=$?",
        f'if [ "$atlas_gate" -eq {NOTHING_LEFT} ]; then atlas_gated=1; exit 0; fi  # nothing left to run',
    )

"""The ONE remote script a refresh runs per cluster, and its parser: a delimited ``squeue`` with array tasks
expanded, ``sacct`` only for arrays that left squeue, accounting detection, the exit codes the tasks'
scripts wrote, the last line of running tasks' logs, and the tail of the ``.err`` log of tasks that ended
badly and whose cause is not yet known (each read once), all bounded in bytes."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from string import Template

from atlas_sweeps.launch.layout import EXIT_STREAM, RUN_STREAM, exit_files, task_file_lines
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.slurm.sacct import SACCT_FIELDS, accounting_answer, parse_sacct, sacct_command
from atlas_sweeps.slurm.squeue import column, parse_squeue, squeue_command
from atlas_sweeps.slurm.states import ACTIVE_STATES, FAILED, case_pattern
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.status.agent_runs import AgentRun, parse_agent_runs
from atlas_sweeps.status.packed import (
    RUN_LOG_FACT,
    RunKey,
    parse_run_exit_files,
    parse_run_last_lines,
    parse_run_log_fact,
    run_log_lines,
)
from atlas_sweeps.status.reap import Reaped, parse_reap, reap_lines

MAX_LOG_TASKS = 200  # running tasks whose last log line one poll reads
LOG_LINE_BYTES = 300  # per task: the poll's output stays small whatever the logs hold
LOGGED_STATE = "RUNNING"  # the state whose tasks' last log lines a poll reads
MAX_ERR_TASKS = 50  # tasks whose .err tail one poll reads; the others are read by the next polls
ERR_TAIL_BYTES = 4096  # per task: enough for a traceback's end or slurmstepd's line


@dataclass(frozen=True)
class ArrayQuery:
    """One job array the poll asks about."""

    job_id: str
    job_name: str
    task_count: int
    output: str  # log pattern (%A_%a)
    submitted: float
    recheck: tuple[int, ...] = ()  # tasks that may have ended since the last poll: their last log line is read once more
    error: str = ""  # .err log pattern (%A_%a)
    diagnose: tuple[int, ...] = ()  # tasks whose cause is not known yet: their .err tail is read if they ended
    packed: bool = False  # its tasks run several runs (status/packed.py): their running runs' last lines are read


@dataclass(frozen=True)
class PollResult:
    """What one poll script said (parsed, not yet merged)."""

    squeue: list[TaskState]
    sacct: list[TaskState]
    accounting: bool | None  # None: sacct was not needed this time
    log_lines: dict[tuple[str, int], str]
    sacct_error: str | None = None
    exit_codes: dict[tuple[str, int], int] = field(default_factory=dict)
    err_tails: dict[tuple[str, int], str] = field(default_factory=dict)  # tasks that ended and were not exit 0
    err_cut: bool = False  # MAX_ERR_TASKS was reached: some ended tasks' logs were left for the next poll
    agent_runs: dict[tuple[str, int], AgentRun] = field(default_factory=dict)  # W&B: the run each agent is on
    reaped: Reaped = field(default_factory=lambda: Reaped(arrays=frozenset()))
    run_exits: dict[RunKey, str] = field(default_factory=dict)  # packed runs' own exit records
    run_logs: dict[RunKey, str] = field(default_factory=dict)  # running packed runs' last log lines


def _awk(template: str) -> str:
    """An awk program over squeue's lines, its ``$State``-style field references turned into columns."""
    return Template(template).substitute(ARRAY=f"${column('ArrayJobID')}", TASK=f"${column('ArrayTaskID')}",
                                         JOBID=f"${column('JobID')}", STATE=f"${column('State')}")


# Counts each array's active tasks in squeue's output (a pending remainder "5-9%2" counts 5) and prints,
# comma-separated, the arrays with fewer active tasks than they have: some of theirs left squeue.
_NEED_AWK = _awk(r"""
BEGIN { n = split(spec, s, " "); for (i = 1; i <= n; i++) { split(s[i], p, ":"); want[p[1]] = p[2] }
        m = split(active, a, " "); for (i = 1; i <= m; i++) act[a[i]] = 1 }
{ gsub(/ /, ""); if (!($STATE in act)) next
  t = $TASK; gsub(/[\[\]]/, "", t); sub(/%.*/, "", t); c = 0
  k = split(t, r, ",")
  for (j = 1; j <= k; j++) { step = 1
    if (index(r[j], ":")) { split(r[j], q, ":"); r[j] = q[1]; step = q[2] }
    if (split(r[j], ab, "-") == 2) c += int((ab[2] - ab[1]) / step) + 1; else c += 1 }
  have[$ARRAY] += c }
END { for (id in want) if (have[id] + 0 < want[id] + 0) printf "%s,", id }
""")
# Each task's state as "array_task STATE" lines, from squeue's output and from sacct's (its JobID is
# "array_task"; "CANCELLED by 0" is CANCELLED): what decides whose .err tail a poll reads.
_STATES_AWK = _awk('NF > 1 {gsub(/ /, ""); print $ARRAY "_" $TASK, $STATE}')
_SACCT_STATES_AWK = (f'NF > 1 {{split(${SACCT_FIELDS.index("State") + 1}, w, " "); sub(/[+]$/, "", w[1]); '
                     f'print ${SACCT_FIELDS.index("JobID") + 1}, w[1]}}')
# The running tasks of squeue's output, as "array task jobid" lines.
_LOGGED_AWK = _awk(f'{{gsub(/ /, "")}} $STATE == "{LOGGED_STATE}" {{print $ARRAY, $TASK, $JOBID}}')


def poll_script(arrays: list[ArrayQuery], *, reap: Iterable[str] = ()) -> str:
    """The bash run once per refresh for every array of one cluster; the pending tasks of the arrays of
    ``reap`` (sweeps with nothing left to run) are cancelled right after its squeue (``status/reap.py``)."""
    need_spec = " ".join(f"{a.job_id}:{a.task_count}" for a in arrays)
    start = int(min(a.submitted for a in arrays) - 300)
    quote = chr(34)
    lines = [
        EMIT_FUNCTION,
        "export LC_ALL=C",
        "errf=$(mktemp)",
        "declare -A pat",
        *(f"pat[{a.job_id}]={shlex.quote(a.output)}" for a in arrays if a.job_id.isdigit()),
        f"sq=$({squeue_command(a.job_name for a in arrays)} 2>\"$errf\")",
        'rc=$?',
        'if [ "$rc" -ne 0 ]; then emit squeue_error "$(cat "$errf")"; rm -f "$errf"; exit 0; fi',
        'emit squeue "$sq"',
        *reap_lines(reap),
        # Arrays whose tasks are not all active in squeue: only those need sacct.
        f"need=$(printf '%s\\n' \"$sq\" | awk -F'|' -v spec={shlex.quote(need_spec)} "
        f"-v active={shlex.quote(' '.join(ACTIVE_STATES))} {shlex.quote(_NEED_AWK)})",
        'if [ -n "$need" ]; then',
        '  need=${need%,}',
        '  if ! command -v sacct >/dev/null 2>&1; then emit accounting no',
        f'  else start=$(date -d @{start} +%Y-%m-%dT%H:%M:%S 2>/dev/null || echo now-7days)',
        f'    if ac=$({sacct_command(ids_expr=quote + "$need" + quote, start_expr=quote + "$start" + quote)}'
        ' 2>"$errf"); then',
        '      emit accounting yes; emit sacct "$ac"',
        '    else emit sacct_error "$(cat "$errf")"; fi',
        '  fi',
        'fi',
        "lastline() {  # ARRAY_ID TASK RAW_ID: emit the task's last non-empty log line, bounded in bytes",
        '  local p=${pat[$1]:-} f l; [ -n "$p" ] || return 0',
        '  f=${p//%A/$1}; f=${f//%a/$2}; f=${f//%j/$3}',
        '  [ -r "$f" ] || return 0',
        "  l=$(tail -c 4096 -- \"$f\" 2>/dev/null | tr '\\r' '\\n' | grep -v '^[[:space:]]*$' | tail -n 1 "
        f"| head -c {LOG_LINE_BYTES})",
        '  emit "log:${1}_$2" "$l"',
        "}",
        f"printf '%s\\n' \"$sq\" | awk -F'|' {shlex.quote(_LOGGED_AWK)} "
        f"| head -n {MAX_LOG_TASKS} | while read -r aj t raw; do lastline \"$aj\" \"$t\" \"$raw\"; done",
        *(f"lastline {a.job_id} {t} {a.job_id}_{t}" for a in arrays if a.job_id.isdigit()
          for t in a.recheck[:MAX_LOG_TASKS]),
        # The exit codes the tasks' scripts wrote as they exited: "<array>_<task>.exit:<code>" lines.
        # ... and the W&B run each agent task is on ("<array>_<task>.run:<run id> <params>" lines).
        *(f'emit exits:{a.job_id} "$(cd {shlex.quote(d)} 2>/dev/null && grep -s "" -- {g} {r} /dev/null)"'
          for a in arrays if a.job_id.isdigit()
          for (d, g), (_, r) in [(exit_files(a.output, job_id=a.job_id),
                                  exit_files(a.output, job_id=a.job_id, stream=RUN_STREAM))]),
        *_err_tail_lines(arrays),
        *run_log_lines([(a.job_id, exit_files(a.output, job_id=a.job_id)[0]) for a in arrays
                        if a.packed and a.job_id.isdigit()], max_runs=MAX_LOG_TASKS, line_bytes=LOG_LINE_BYTES),
        'rm -f "$errf"',
        "emit done ok",
    ]
    return "\n".join(lines) + "\n"


def _err_tail_lines(arrays: list[ArrayQuery]) -> list[str]:
    """Bash lines emitting ``err:<array>_<task>`` with the .err tail of each task to diagnose that ended badly:
    in a failed state in squeue's or sacct's answer (squeue's wins, as in the merge), or known to neither
    with no exit-code file saying 0 (a cluster without accounting); at most ``MAX_ERR_TASKS`` a poll."""
    wanted = [a for a in arrays if a.job_id.isdigit() and a.error and a.diagnose]
    if not wanted:
        return []
    return [
        "declare -A st; nerr=0",
        f"while read -r k s; do [ -z \"$k\" ] || st[$k]=$s; done < <(printf '%s\\n' \"${{ac:-}}\" | awk -F'|' "
        f"{shlex.quote(_SACCT_STATES_AWK)}; printf '%s\\n' \"$sq\" | awk -F'|' {shlex.quote(_STATES_AWK)})",
        "errtail() {  # ARRAY_ID ERR_PATTERN EXIT_DIR TASK...: emit the .err tails of the tasks that ended badly",
        '  local a=$1 p=$2 d=$3 t f; shift 3',
        '  for t in "$@"; do',
        '    case "${st[${a}_$t]:-}" in',
        f'      {case_pattern(FAILED)}) ;;',
        '      "") [ "$(head -c 8 -- "$d/${a}_$t.exit" 2>/dev/null)" != 0 ] || continue ;;',
        '      *) continue ;;',
        '    esac',
        '    f=${p//%A/$a}; f=${f//%a/$t}; f=${f//%j/${a}_$t}',
        '    [ -r "$f" ] || continue',
        f'    if [ "$nerr" -ge {MAX_ERR_TASKS} ]; then emit err_cut yes; return 0; fi',
        f'    nerr=$((nerr + 1)); emit "err:${{a}}_$t" "$(tail -c {ERR_TAIL_BYTES} -- "$f" 2>/dev/null)"',
        '  done',
        "}",
        *(f"errtail {a.job_id} {shlex.quote(a.error)} {shlex.quote(exit_files(a.output, job_id=a.job_id)[0])} "
          + " ".join(str(t) for t in a.diagnose) for a in wanted),
    ]


def parse_poll(stdout: str, *, job_ids: Iterable[str]) -> PollResult:
    """The facts of ``poll_script``'s output; a scheduler that did not answer raises ``RemoteError``."""
    from atlas_sweeps.errors import RemoteError

    ids = list(job_ids)
    facts = parse_facts(stdout)
    values: dict[str, str] = {}
    logs: dict[tuple[str, int], str] = {}
    exit_codes: dict[tuple[str, int], int] = {}
    err_tails: dict[tuple[str, int], str] = {}
    agent_runs: dict[tuple[str, int], AgentRun] = {}
    run_exits: dict[RunKey, str] = {}
    run_logs: dict[RunKey, str] = {}
    for key, value in facts:
        if key.startswith(RUN_LOG_FACT):
            run_logs.update(parse_run_log_fact(key, value))
        elif key.startswith(("log:", "err:")):
            job, _, task = key[4:].partition("_")
            if task.isdigit():
                (logs if key.startswith("log:") else err_tails)[(job, int(task))] = value
        elif key.startswith("exits:"):
            exit_codes.update(parse_exit_files(value, job_id=key[6:]))
            agent_runs.update(parse_agent_runs(value, job_id=key[6:]))
            run_exits.update(parse_run_exit_files(value, job_id=key[6:]))
            run_logs.update(parse_run_last_lines(value, job_id=key[6:]))
        else:
            values[key] = value
    if "squeue_error" in values:
        detail = " ".join(values["squeue_error"].split()) or "no message"
        raise RemoteError(f"squeue failed: {detail}", hint="the controller may be down; retrying")
    if "done" not in values:
        raise RemoteError("the status script stopped before its end", hint="the connection may have dropped")
    accounting, sacct_error = accounting_answer(values)
    sacct = parse_sacct(values.get("sacct", ""), job_ids=ids) if accounting else []
    return PollResult(squeue=parse_squeue(values.get("squeue", ""), job_ids=ids), sacct=sacct,
                      accounting=accounting, log_lines=logs, sacct_error=sacct_error, exit_codes=exit_codes,
                      err_tails=err_tails, err_cut=values.get("err_cut") == "yes", agent_runs=agent_runs,
                      reaped=parse_reap(values.get("reap")), run_exits=run_exits, run_logs=run_logs)


def parse_exit_files(text: str, *, job_id: str) -> dict[tuple[str, int], int]:
    """``grep``'s ``<array>_<task>.exit:<code>`` lines of one array's exit-code files (see ``jobs.exit_record``)."""
    return {(job_id, int(task)): int(code.strip()) for task, code in task_file_lines(text, job_id=job_id, stream=EXIT_STREAM)
            if task.isdigit() and code.strip().isdigit()}

"""``tail``: follow one job's log through the session's one streamed script. The script waits while the job
is pending, follows the file while it runs (``tail -F``), and reports the final state and exit code; log
lines come back prefixed ``L `` so nothing a program prints can pass for one of our ``ATLAS`` facts."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass

from atlas_sweeps.remote.base import MAX_LINE_BYTES, Remote
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_line
from atlas_sweeps.slurm.exit_codes import parse_exit_code
from atlas_sweeps.slurm.sacct import sacct_final_command
from atlas_sweeps.slurm.scontrol import show_job_command
from atlas_sweeps.slurm.states import PENDING, RUNNING, case_pattern, normalize_state
from atlas_sweeps.status.packed import run_end_lines

# Longest log line shown whole; longer ones are cut (the client's line buffer is bounded just above it).
MAX_SHOWN_BYTES = MAX_LINE_BYTES - 1024
CUT_MARK = " [line cut]"
_ID = '"$id"'  # the job id, as the tail script's commands expand it

# ``prefix LIVE`` prefixes every log line with ``L `` (``R `` when \r ended it: a progress bar's redraw), cut
# at MAX_SHOWN_BYTES. LIVE=1 (following) passes each line on as soon as its \r or \n arrives, so a bar shows as
# it is drawn (a \r\n comes as a redraw and an empty line: the same bytes reach the terminal); LIVE=0 (a
# finished log) keeps only a bar's latest state. Perl reads the bytes as they come; an awk (where perl is
# missing) can only end records at \n without waiting for the next byte (gawk holds a record back when RS is
# a regular expression), so there a bar's redraws are split when its line ends.
_PREFIX_PERL = r"""my ($live, $max, $cut) = @ARGV;
$| = 1 if $live;
my ($rest, $held, $holding, $skip) = ('', '', 0, 0);
sub show {
  my ($kind, $text) = @_;
  $text = substr($text, 0, $max) . $cut if length($text) > $max;
  if (!$live) {
    if ($kind eq 'R') { ($held, $holding) = ($text, 1); return }
    $text = $held if $text eq '' && $holding;
  }
  $holding = 0;
  print "$kind $text\n";
}
while (sysread(STDIN, my $chunk, 65536)) {
  my @parts = split /([\r\n])/, $rest . $chunk, -1;
  $rest = pop @parts;
  while (@parts) {
    my ($text, $end) = splice(@parts, 0, 2);
    if ($skip) { $skip = 0; next }
    show($end eq "\r" ? 'R' : 'L', $text);
  }
  if (length($rest) > $max) { show('L', $rest) unless $skip; ($rest, $skip) = ('', 1) }
}
show('L', $rest) if length($rest) && !$skip;
print "R $held\n" if $holding;"""
_PREFIX_AWK = r"""function show(kind, text) {
  if (length(text) > max) text = substr(text, 1, max) cut
  if (!live) {
    if (kind == "R") { held = text; holding = 1; return }
    if (text == "" && holding) text = held
  }
  holding = 0
  print kind " " text
}
{
  sub(/\r$/, "")
  n = split($0, part, "\r")
  for (i = 1; i < n; i++) show("R", part[i])
  show("L", n ? part[n] : "")
  if (live) fflush()
}
END { if (holding) print "R " held }"""
PREFIX_FUNCTION = (
    "prefix() { if command -v perl >/dev/null 2>&1; then "
    f"perl -e {shlex.quote(_PREFIX_PERL)} \"$1\" {MAX_SHOWN_BYTES} {shlex.quote(CUT_MARK)}; "
    # mawk reads a pipe in blocks unless told otherwise: lines would wait for the next ones.
    "else flags=''; case \"$(awk -W version 2>&1 </dev/null)\" in *mawk*) flags='-W interactive' ;; esac; "
    f"awk $flags -v live=\"$1\" -v max={MAX_SHOWN_BYTES} -v cut={shlex.quote(CUT_MARK)} {shlex.quote(_PREFIX_AWK)}; "
    "fi; }"
)


@dataclass(frozen=True)
class TailEvent:
    """One thing the tail script said: a log ``line`` (``end`` is how it ended: ``\\n``, or ``\\r`` for a
    progress bar's redraw), a ``state`` change, the ``final`` state, ``missing``."""

    kind: str
    text: str = ""
    end: str = "\n"
    state: str = ""
    reason: str = ""
    exit_code: int | None = None


def tail_script(*, slurm_id: str, path: str | None, lines: int, interval: float, stream: str = "out",
                run_record: str | None = None) -> str:
    """Bash that follows ``slurm_id``'s log at ``path`` (None: ask ``scontrol`` for StdOut/StdErr);
    ``run_record``: one run of a packed task, which ends when its exit record holds its code."""
    field = "StdErr" if stream == "err" else "StdOut"
    return "\n".join([
        EMIT_FUNCTION,
        "export LC_ALL=C",
        f"id={shlex.quote(slurm_id)}; file={shlex.quote(path or '')}; n={int(lines)}; every={float(interval):g}",
        *run_end_lines(run_record),
        f'info() {{ {show_job_command(_ID)}; }}',
        "field() { printf '%s\\n' \"$1\" | tr ' ' '\\n' | sed -n \"s/^$2=//p\" | head -n 1; }",
        PREFIX_FUNCTION,
        'tailpid=""; last=""',
        "stop_tail() { if [ -n \"$tailpid\" ]; then sleep 1; kill \"$tailpid\" 2>/dev/null; wait \"$tailpid\" 2>/dev/null; sleep 0.2; fi; }",
        "while :; do",
        *(["  run_ended"] if run_record else []),
        '  line=$(info)',
        '  if [ -z "$line" ]; then',
        # Not (or no longer) known to slurmctld: the accounting database has the final word.
        f'    acct=$({sacct_final_command(_ID)} 2>/dev/null | tail -n 1)',
        '    if [ -z "$acct" ]; then',
        '      if [ -n "$last" ]; then emit final "UNKNOWN||"; else emit missing "$id"; fi; exit 0',
        '    fi',
        '    stop_tail',
        '    if [ -z "$tailpid" ] && [ -n "$file" ] && [ -r "$file" ]; then tail -n "$n" -- "$file" | prefix 0; fi',
        '    emit final "${acct%%|*}||${acct#*|}"; exit 0',
        '  fi',
        '  [ -n "$file" ] || file=$(field "$line" ' + field + ')',
        '  st=$(field "$line" JobState); reason=$(field "$line" Reason)',
        '  if [ "$st|$reason" != "$last" ]; then emit state "$st|$reason"; last="$st|$reason"; fi',
        '  case "$st" in',
        f'    {case_pattern(PENDING)}) sleep "$every"; continue ;;',
        f'    {case_pattern(RUNNING)})',
        '      if [ -z "$tailpid" ]; then tail -n "$n" -F -- "$file" 2>/dev/null > >(prefix 1) & tailpid=$!; fi',
        '      sleep "$every"; continue ;;',
        '  esac',
        '  stop_tail',
        '  if [ -z "$tailpid" ] && [ -r "$file" ]; then tail -n "$n" -- "$file" | prefix 0; fi',
        '  emit final "$st|$reason|$(field "$line" ExitCode)"; exit 0',
        "done",
    ]) + "\n"


def parse_tail_line(line: str) -> TailEvent | None:
    """The event one stdout line of ``tail_script`` carries."""
    if line[:1] in ("L", "R") and line[1:2] in (" ", ""):
        return TailEvent(kind="line", text=line[2:], end="\r" if line[0] == "R" else "\n")
    fact = parse_line(line)
    if fact is None:
        return None
    key, value = fact
    if key == "missing":
        return TailEvent(kind="missing", text=value)
    if key in ("state", "final"):
        parts = (value.split("|") + ["", ""])[:3]
        state = normalize_state(parts[0]) if parts[0] else "UNKNOWN"
        code = parse_exit_code(parts[2]) if key == "final" and parts[2] else None
        return TailEvent(kind=key, state=state, reason=parts[1] if parts[1] not in ("None", "(null)") else "",
                         exit_code=code)
    return None


def exit_status(event: TailEvent) -> int:
    """What ``tail`` exits with for a final state: the job's exit code, else 0 if it completed, else 1."""
    if event.exit_code:
        return event.exit_code
    return 0 if event.state == "COMPLETED" else 1


def follow(remote: Remote, script: str, *, on_event: Callable[[TailEvent], None],
           stop: threading.Event | None = None) -> TailEvent | None:
    """Run ``script`` streamed on ``remote``, passing each event on; the final (or missing) event."""
    result: list[TailEvent] = []

    def on_stdout(line: str) -> None:
        event = parse_tail_line(line)
        if event is None:
            return
        if event.kind in ("final", "missing"):
            result.append(event)
        on_event(event)

    remote.stream_script(script, on_stdout=on_stdout, stop=stop)
    return result[-1] if result else None


def cancelled_note(slurm_id: str, *, state: str, start: str) -> str | None:
    """What ``tail`` says of a task neither slurmctld nor sacct knows when the state database last saw it
    CANCELLED (``cancel`` records that): a task cancelled before it started leaves squeue at once, may have
    no sacct record of its own, and never wrote a log. None when the database knows no cancel."""
    if state != "CANCELLED":
        return None
    if not start:
        return f"job {slurm_id} was cancelled before it started: it never ran, so it has no log"
    return f"job {slurm_id} was cancelled (started {start}); the cluster no longer lists it"

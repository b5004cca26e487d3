"""The best run of each local-backend sweep by its ``metric``, read on the cluster from the runs' offline W&B
files. This module is also the program ``report``'s one remote script runs there (its source is sent as
is): standard library only, reading a bounded number of bytes per run and printing one JSON line per sweep.

wandb 0.31 writes no ``wandb-summary.json`` offline: the summary is in the run's ``run-<id>.wandb``
transaction log (LevelDB log framing in 32 KiB blocks, each record a protobuf ``Record``; a ``summary``
record, field 3, holds ``update`` items, field 1: ``key`` 1, ``nested_key`` 2, ``value_json`` 16). The
last value written for the metric wins; only the file's last ``TAIL_BYTES`` are read. Which run directory
is a task's comes from its ``.err`` log, where wandb names it (``wandb sync <dir>``)."""

from __future__ import annotations

import json
import os
import re
import struct
import sys

BLOCK = 32768
HEADER = 7  # ":W&B" + magic + version
TAIL_BYTES = 4 << 20  # per run file: the summary of a long run's last updates
ERR_BYTES = 65536  # per .err log: its start and its end are searched for the run directory
BUDGET_BYTES = 256 << 20  # read in one call at most, over all runs: the runs past it are said to be unread
# An absolute path (wandb also prints a relative "./wandb/offline-run-..." that must not match from its "/").
# The run id is anything up to the next blank or slash: a resumable run's id may be "<launch>-<sweep>-<task>".
_RUN_DIR = re.compile(rb"(?<!\S)(/[^\s'\"\x1b]*/offline-run-\d{8}_\d{6}-([^\s/'\"\x1b]+))")
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, object]]:
    """A protobuf message's ``(field number, value)`` pairs: bytes for length-delimited fields, ints for
    varints (fixed-width fields are skipped)."""
    out: list[tuple[int, object]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            out.append((number, buf[i:i + size]))
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
    return out


def log_records(data: bytes, *, start: int) -> list[bytes]:
    """The records of LevelDB-framed ``data`` from block-aligned ``start`` (a record begun before it is
    skipped; a torn record at the end, from a run still writing, is left out)."""
    out: list[bytes] = []
    pos = max(start, HEADER)
    part: bytes | None = None
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        size, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        chunk = data[pos + 7:pos + 7 + size]
        pos += 7 + size
        if len(chunk) < size or kind == 0:
            break
        if kind == _FULL:
            out.append(chunk)
            part = None
        elif kind == _FIRST:
            part = chunk
        elif part is not None:
            part += chunk
            if kind == _LAST:
                out.append(part)
                part = None
    return out


def summary_value(data: bytes, metric: str, *, start: int = 0) -> float | None:
    """The last numeric value the summary records of ``data`` give ``metric`` (``a.b`` for a nested key)."""
    found = None
    for record in log_records(data, start=start):
        for number, summary in fields(record):
            if number != 3 or not isinstance(summary, bytes):
                continue
            for item_no, item in fields(summary):
                if item_no != 1 or not isinstance(item, bytes):
                    continue
                key, nested, value = "", [], None
                for n, v in fields(item):
                    if isinstance(v, bytes):
                        if n == 1:
                            key = v.decode("utf-8", "replace")
                        elif n == 2:
                            nested.append(v.decode("utf-8", "replace"))
                        elif n == 16:
                            value = v
                if (key or ".".join(nested)) == metric and value is not None:
                    try:
                        number_value = json.loads(value)
                    except ValueError:
                        continue
                    if isinstance(number_value, (int, float)) and not isinstance(number_value, bool):  # noqa: UP038 - Python 3.8 on clusters
                        found = float(number_value)
    return found


def run_dir(err_log: bytes) -> tuple[str, str] | None:
    """``(directory, run id)`` of the last offline run wandb names in a task's ``.err`` log."""
    matches = _RUN_DIR.findall(err_log)
    if not matches:
        return None
    path, run_id = matches[-1]
    return path.decode("utf-8", "replace"), run_id.decode()


def _read(path: str, *, head: int, tail: int) -> tuple[bytes, int]:
    """The first ``head`` bytes and, from a ``BLOCK``-aligned offset, the last ``tail`` (one piece when they
    meet) and the offset the tail starts at."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size - tail)
        start -= start % BLOCK
        if start <= head:
            return f.read(), 0
        first = f.read(head)
        f.seek(start)
        return first + f.read(), start


_spent = [0]  # bytes read so far by this process (one report call)


def run_value(err_path: str, metric: str) -> tuple[str, float | None] | None:
    """The run id and metric value of the run a task's ``.err`` log names; None when it names none."""
    try:
        err, _ = _read(err_path, head=ERR_BYTES, tail=ERR_BYTES)
    except OSError:
        return None
    _spent[0] += len(err)
    found = run_dir(err)
    if found is None:
        return None
    directory, run_id = found
    try:
        data, start = _read(os.path.join(directory, f"run-{run_id}.wandb"), head=0, tail=TAIL_BYTES)
    except OSError:
        return run_id, None
    _spent[0] += len(data)
    return run_id, summary_value(data, metric, start=start)


def best_of(sweep: dict) -> dict:
    """One sweep's answer: its best run (``run``, ``run_id``, ``value``) by ``metric`` and ``goal``, how many
    runs logged the metric, how many named an offline run, and how many were left unread (``BUDGET_BYTES``)."""
    best = None
    logged = named = unread = 0
    for run, err_path in sweep["runs"]:
        if _spent[0] >= BUDGET_BYTES:
            unread += 1
            continue
        got = run_value(err_path, sweep["metric"])
        if got is None:
            continue
        named += 1
        run_id, value = got
        if value is None or value != value:  # nan ranks nowhere
            continue
        logged += 1
        better = best is None or (value > best["value"] if sweep["goal"] == "maximize" else value < best["value"])
        if better:
            best = {"run": run, "run_id": run_id, "value": value}
    return {"key": sweep["key"], "best": best, "logged": logged, "named": named, "runs": len(sweep["runs"]),
            "unread": unread}


def main(argv: list[str]) -> int:
    """``python - SPEC``: SPEC is ``{"sweeps": [{"key", "metric", "goal", "runs": [[run, err path]]}]}``."""
    spec = json.loads(argv[1])
    for sweep in spec["sweeps"]:
        print(json.dumps(best_of(sweep)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

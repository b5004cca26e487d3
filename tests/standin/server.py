"""A W&B-protocol stand-in server for tests (test infrastructure, not part of atlas-sweeps).

W&B's hosted service can't be reached from here, so tests run the real `wandb` client and CLI against
this small loopback server: GraphQL over `POST /graphql` dispatched by `operationName`, run-file
uploads, and `file_stream`. It answers the operations wandb 0.31 sends for sweeps, agents, online and
synced runs and the public API, schedules grid/random sweeps itself, and records everything in a
`Store` so tests can assert on it. Anything it does not know gets a GraphQL error naming it.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import yaml

from tests.standin.store import AgentRecord, RunRecord, Store, SweepRecord

DEFAULT_ENTITY = "atlas-test"
DEFAULT_API_KEY = "atlas_standin_test_key_0123456789abcdefghijklmnop"  # 40+ chars, as the client demands
_OP_RE = re.compile(r"\b(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")


class GraphQLError(Exception):
    """Answered as HTTP 200 with `errors`, which the client treats as final (no retries)."""


@dataclass
class RequestRecord:
    """One request the server saw: GraphQL ones carry their operation and variables."""

    method: str
    path: str
    status: int
    operation: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


class StandinServer:
    """A running stand-in: its address, credentials, store and traffic log (the test fixture's handle)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        entity: str = DEFAULT_ENTITY,
        api_key: str = DEFAULT_API_KEY,
    ) -> None:
        self.entity = entity
        self.api_key = api_key
        self.store = Store(entity=entity)
        self.operations: list[str] = []  # GraphQL operationName of every authenticated request, in order
        self.requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self.errors: list[str] = []  # tracebacks of the stand-in's own failures (answered as GraphQL errors)
        self._httpd = _QuietHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandinServer:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="wandb-standin", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # conveniences for tests ----------------------------------------------------------------------
    def sweep(self, sweep_id: str) -> SweepRecord:
        sweep = self.store.find_sweep(sweep_id)
        if sweep is None:
            raise KeyError(f"no sweep {sweep_id!r} on the stand-in (known: {sorted(self.store.sweeps)})")
        return sweep

    def runs_of(self, sweep_id: str) -> list[RunRecord]:
        return self.store.runs_of(sweep_id)

    def run(self, run_id: str) -> RunRecord:
        run = self.store.find_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} on the stand-in")
        return run

    def runs(self, *, project: str | None = None) -> list[RunRecord]:
        with self.store.lock:
            return [r for r in self.store.runs.values() if project is None or r.project == project]

    def agents_of(self, sweep_id: str) -> list[AgentRecord]:
        with self.store.lock:
            return [a for a in self.store.agents.values() if a.sweep == sweep_id]

    @property
    def sweeps(self) -> dict[str, SweepRecord]:
        """Every sweep by id (live records)."""
        return self.store.sweeps

    @property
    def agents(self) -> dict[str, AgentRecord]:
        """Every registered agent by id (live records)."""
        return self.store.agents

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> None:
        """Poll `predicate` until true; raise TimeoutError after `timeout` seconds (for jobs that run
        agents elsewhere, e.g. under Slurm)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stand-in: condition not met within {timeout} s")
            time.sleep(interval)

    def ops_since(self, mark: int) -> list[str]:
        """Operations logged after `mark` (take `mark = len(handle.operations)` before acting)."""
        return self.operations[mark:]

    def _log(self, record: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(record)
            if record.operation and record.status != 401:
                self.operations.append(record.operation)


class _QuietHTTPServer(ThreadingHTTPServer):
    """Clients (wandb-core) drop idle keep-alive connections; that is not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _make_handler(server: StandinServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        standin = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: StandinServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep pytest output clean; traffic is in standin.requests

    # transport ---------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        return body

    def _send(
        self,
        status: int,
        payload: Any,
        *,
        operation: str | None = None,
        variables: dict[str, Any] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        # Logged before the answer leaves, so a client that has its answer always finds its request logged.
        self.standin._log(RequestRecord(self.command, self.path, status, operation, variables or {}))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            _, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return key == self.standin.api_key

    def _deny(self, operation: str | None = None) -> None:
        # The hosted service answers a bad key with HTTP 401, which the client does not retry.
        self._send(401, {"errors": [{"message": "user is not logged in"}]}, operation=operation)

    # routes ------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path.startswith("/upload/"):
            run, name = self._upload_target(path)
            if run is not None and name in run.files:
                data = run.files[name]
                self.standin._log(RequestRecord("GET", self.path, 200))
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        self._send(404, {"error": f"stand-in: nothing at GET {path}"})

    def do_PUT(self) -> None:  # noqa: N802
        body = self._read_body()
        path = urlsplit(self.path).path
        if not path.startswith("/upload/"):
            self._send(404, {"error": f"stand-in: nothing at PUT {path}"})
            return
        run, name = self._upload_target(path)
        if run is None:
            self._send(404, {"error": f"stand-in: no run for upload {path}"})
            return
        with self.standin.store.lock:
            run.files[name] = body
        self._send(200, {})

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        path = urlsplit(self.path).path
        if path == "/graphql":
            self._graphql(body)
        elif path.endswith("/file_stream") and path.startswith("/files/"):
            self._file_stream(path, body)
        else:
            self._send(404, {"error": f"stand-in: nothing at POST {path}"})

    def _upload_target(self, path: str) -> tuple[RunRecord | None, str]:
        parts = path.split("/", 5)  # "", "upload", entity, project, run, name
        if len(parts) < 6:
            return None, ""
        _, _, entity, project, run_id, name = (unquote(p) for p in parts)
        return self.standin.store.get_run(entity, project, run_id), name

    def _graphql(self, body: bytes) -> None:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            self._send(400, {"errors": [{"message": "stand-in: body is not JSON"}]})
            return
        query = request.get("query") or ""
        operation = request.get("operationName")
        if not operation:
            match = _OP_RE.search(query)
            operation = match.group(1) if match else "<anonymous>"
        variables = request.get("variables") or {}
        if not self._authorized():
            self._deny(operation)
            return
        handler = _OPERATIONS.get(operation)
        if handler is None:
            self._send(
                200,
                {
                    "data": None,
                    "errors": [
                        {
                            "message": f"stand-in: unsupported GraphQL operation {operation!r}; add it to tests/standin/server.py",
                        }
                    ],
                },
                operation=operation,
                variables=variables,
            )
            return
        try:
            data = handler(self.standin, variables, query)
        except GraphQLError as e:
            self._send(
                200, {"data": None, "errors": [{"message": str(e)}]}, operation=operation, variables=variables
            )
            return
        except Exception as e:  # a stand-in bug: answer so the client fails fast instead of retrying
            self.standin.errors.append(traceback.format_exc())
            self._send(
                200,
                {"data": None, "errors": [{"message": f"stand-in bug in {operation}: {e!r}"}]},
                operation=operation,
                variables=variables,
            )
            return
        self._send(200, {"data": data}, operation=operation, variables=variables)

    def _file_stream(self, path: str, body: bytes) -> None:
        if not self._authorized():
            self._deny()
            return
        parts = [unquote(p) for p in path.split("/")]  # "", files, entity, project, run, file_stream
        if len(parts) != 6:
            self._send(404, {"error": f"stand-in: bad file_stream path {path}"})
            return
        _, _, entity, project, run_id, _ = parts
        store = self.standin.store
        run = store.get_run(entity, project, run_id)
        if run is None:
            self._send(404, {"error": f"stand-in: no run {entity}/{project}/{run_id}"})
            return
        payload = json.loads(body or b"{}")
        with store.lock:
            _apply_file_stream(run, payload)
            store.requeue_if_preempted(run)
        summary = {k: v for k, v in payload.items() if k != "files"}  # complete, exitcode, uploaded, ...
        self._send(200, {"exitcode": None, "limits": {}}, variables=summary)


def _apply_file_stream(run: RunRecord, payload: dict[str, Any]) -> None:
    for name, chunk in (payload.get("files") or {}).items():
        lines = chunk.get("content") or []
        if name == "wandb-summary.json" and lines:
            run.summary = json.loads(lines[-1])
        elif name == "wandb-history.jsonl":
            run.history.extend(json.loads(line) for line in lines)
        elif lines:
            existing = run.files.get(name, b"")
            run.files[name] = existing + "".join(f"{line}\n" for line in lines).encode()
    run.heartbeat_at = _now_iso()
    if run.state == "pending":
        run.state = "running"
    if payload.get("preempting"):
        run.preempting, run.state = True, "preempting"
    if payload.get("complete"):
        run.exitcode = payload.get("exitcode")
        # a run that said it was being preempted and stopped unfinished is preempted: its sweep requeues it
        run.state = "finished" if not run.exitcode else "preempted" if run.preempting else "failed"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


# GraphQL operations ------------------------------------------------------------------------------
Op = Callable[[StandinServer, dict[str, Any], str], Any]
_OPERATIONS: dict[str, Op] = {}


def _op(*names: str) -> Callable[[Op], Op]:
    def register(fn: Op) -> Op:
        for name in names:
            _OPERATIONS[name] = fn
        return fn

    return register


def _check_entity(s: StandinServer, entity: str | None) -> str:
    entity = entity or s.entity
    if entity != s.entity:
        raise GraphQLError(f"entity {entity!r} not found (the stand-in only knows {s.entity!r})")
    return entity


def _viewer(s: StandinServer) -> dict[str, Any]:
    return {
        "__typename": "User",
        "id": "VXNlcjox",
        "name": "Atlas Test",
        "username": s.entity,
        "email": "atlas-test@example.invalid",
        "admin": False,
        "flags": "{}",
        "entity": s.entity,
        "deletedAt": None,
        "photoUrl": "",
        "defaultFramework": None,
        "apiKeys": {"edges": []},
        "teams": {"edges": [{"node": {"name": s.entity}}]},
        "organizations": [],
    }


@_op("Viewer", "GetViewer", "GetDefaultEntity", "DefaultEntity")
def _op_viewer(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    return {"viewer": _viewer(s)}


@_op("ServerFeaturesQuery")
def _op_server_features(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    return {"serverInfo": {"features": []}}


@_op("OrganizationCoreWeaveOrganizationID")
def _op_coreweave_org(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    return {"entity": {"organization": None}}


# sweeps ------------------------------------------------------------------------------------------
def _sweep_project(sweep: SweepRecord) -> dict[str, Any]:
    return {
        "id": f"UHJvamVjdDo{sweep.project}",
        "name": sweep.project,
        "entity": {"id": "RW50aXR5OjE=", "name": sweep.entity},
    }


@_op("UpsertSweep", "UpsertSweepState")
def _op_upsert_sweep(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    if v.get("id"):
        sweep = s.store.find_sweep(v["id"])
        if sweep is None:
            raise GraphQLError(f"sweep {v['id']!r} not found")
        if v.get("state"):
            s.store.set_sweep_state(sweep.id, str(v["state"]).upper())
        if v.get("config"):
            with s.store.lock:
                sweep.config_yaml = v["config"]
                sweep.config = yaml.safe_load(v["config"]) or {}
    else:
        entity = _check_entity(s, v.get("entityName"))
        project = v.get("projectName") or "uncategorized"
        config_yaml = v.get("config") or ""
        try:
            config = yaml.safe_load(config_yaml) or {}
            sweep = s.store.create_sweep(
                entity=entity, project=project, config=config, config_yaml=config_yaml
            )
        except (yaml.YAMLError, ValueError) as e:
            raise GraphQLError(f"invalid sweep config: {e}") from e
        if v.get("priorRunsFilters"):
            flt = json.loads(v["priorRunsFilters"])
            s.store.add_prior_runs(sweep.id, [r for r in s.store.project_runs(entity, project) if run_matches(r, flt)])
    return {
        "upsertSweep": {
            "sweep": {
                "id": sweep.id,
                "name": sweep.id,
                "state": sweep.state,
                "project": _sweep_project(sweep),
            },
            "configValidationWarnings": [],
        }
    }


def _lookup_sweep(s: StandinServer, v: dict[str, Any], key: str) -> SweepRecord | None:
    sweep = s.store.find_sweep(v.get(key))
    if sweep is None:
        return None
    if (v.get("entity") or s.entity) != sweep.entity or (v.get("project") and v["project"] != sweep.project):
        return None
    return sweep


def _sweep_node(s: StandinServer, sweep: SweepRecord) -> dict[str, Any]:
    runs = s.store.runs_of(sweep.id)
    return {
        "__typename": "Sweep",
        "id": sweep.id,
        "name": sweep.id,
        "displayName": sweep.config.get("name"),
        "method": sweep.method,
        "state": sweep.state,
        "description": sweep.config.get("description"),
        "bestLoss": None,
        "config": sweep.config_yaml,
        "createdAt": sweep.created_at,
        "updatedAt": sweep.created_at,
        "heartbeatAt": sweep.created_at,
        "earlyStopJobRunning": False,
        "controller": None,
        "scheduler": None,
        "runCount": len(runs),
        "runCountExpected": sweep.expected_runs,
        "priorRuns": {"edges": [{"node": {"name": r}} for r in sweep.prior_runs]},
    }


@_op("GetSweep", "GetSweepLegacy", "SweepConfig", "GetSweepState")
def _op_get_sweep(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    sweep = _lookup_sweep(s, v, "name" if "name" in v else "sweep")
    return {"project": {"sweep": _sweep_node(s, sweep) if sweep else None}}


@_op("SweepWithRuns")
def _op_sweep_with_runs(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    sweep = _lookup_sweep(s, v, "sweep")
    if sweep is None:
        return {"project": {"sweep": None}}
    node = _sweep_node(s, sweep)
    node["runs"] = {
        "edges": [
            {
                "node": {
                    "name": r.id,
                    "state": r.state,
                    "config": json.dumps(r.raw_config or _raw(r.config)),
                    "exitcode": r.exitcode,
                    "heartbeatAt": r.heartbeat_at,
                    "shouldStop": False,
                    "failed": r.state == "failed",
                    "stopped": False,
                    "running": r.state == "running",
                    "summaryMetrics": json.dumps(r.summary),
                    "sampledHistory": [],
                }
            }
            for r in s.store.runs_of(sweep.id)
        ]
    }
    return {"project": {"sweep": node}}


@_op("CreateAgent")
def _op_create_agent(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    sweep = _lookup_sweep(
        s, {"sweep": v.get("sweep"), "entity": v.get("entityName"), "project": v.get("projectName")}, "sweep"
    )
    if sweep is None:
        raise GraphQLError(f"sweep {v.get('sweep')!r} not found")
    agent = s.store.create_agent(sweep_id=sweep.id, host=v.get("host") or "")
    return {"createAgent": {"agent": {"id": agent.id, "name": agent.id}}}


@_op("Heartbeat")
def _op_heartbeat(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    run_state = v.get("runState") or "{}"
    run_state = json.loads(run_state) if isinstance(run_state, str) else run_state
    commands = s.store.heartbeat(str(v.get("id")), run_state)
    if commands is None:
        raise GraphQLError(f"agent {v.get('id')!r} not found")
    return {"agentHeartbeat": {"agent": {"id": v.get("id")}, "commands": json.dumps(commands)}}


# runs --------------------------------------------------------------------------------------------
def _raw(config: dict[str, Any]) -> dict[str, Any]:
    return {k: {"value": val} for k, val in config.items()}


def _run_project(run: RunRecord) -> dict[str, Any]:
    return {
        "id": f"UHJvamVjdDo{run.project}",
        "name": run.project,
        "entity": {"id": "RW50aXR5OjE=", "name": run.entity},
    }


def _bucket(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.storage_id,
        "name": run.id,
        "displayName": run.display_name or run.id,
        "description": run.notes,
        "notes": run.notes,
        "config": json.dumps(run.raw_config or _raw(run.config)),
        "sweepName": run.sweep,
        "project": _run_project(run),
        "historyLineCount": len(run.history),
        "eventsLineCount": 0,
        "summaryMetrics": json.dumps(run.summary),
        "tags": run.tags,
        "group": run.group,
        "jobType": run.job_type,
        "state": run.state,
        "host": run.host,
        "historyTail": "[]",
        "eventsTail": "[]",
        "logLineCount": 0,
        "resumed": False,
    }


@_op("UpsertBucket")
def _op_upsert_bucket(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    store = s.store
    if v.get("id") and not v.get("name"):  # public-API update of an existing run by storage id
        run = store.find_run(v["id"])
        if run is None:
            raise GraphQLError(f"run {v['id']!r} not found")
        inserted = False
    else:
        entity = _check_entity(s, v.get("entity"))
        project = v.get("project") or "uncategorized"
        run_id = v.get("name") or v.get("id")
        if not run_id:
            raise GraphQLError("UpsertBucket needs a run name")
        run, inserted = store.upsert_run(entity=entity, project=project, run_id=run_id)
    with store.lock:
        if v.get("sweep"):
            if store.find_sweep(v["sweep"]) is None:
                raise GraphQLError(f"sweep {v['sweep']!r} not found")
            run.sweep = v["sweep"]
        if v.get("config") is not None:
            raw = json.loads(v["config"]) if isinstance(v["config"], str) else v["config"]
            run.raw_config = raw
            run.config = {
                k: (val["value"] if isinstance(val, dict) and "value" in val else val)
                for k, val in raw.items()
                if k != "_wandb"
            }
        if v.get("tags") is not None:
            run.tags = list(v["tags"])
        if v.get("summaryMetrics"):
            run.summary = json.loads(v["summaryMetrics"])
        for var, attr in (
            ("groupName", "group"),
            ("jobType", "job_type"),
            ("displayName", "display_name"),
            ("notes", "notes"),
            ("description", "notes"),
            ("host", "host"),
            ("program", "program"),
        ):
            if v.get(var) is not None:
                setattr(run, attr, v[var])
        if v.get("state"):
            run.state = str(v["state"]).lower()
        elif run.state == "pending":
            run.state = "running"
        return {"upsertBucket": {"bucket": _bucket(run), "inserted": inserted}}


@_op("RunResumeStatus")
def _op_run_resume_status(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    run = s.store.get_run(v.get("entity") or s.entity, v.get("project") or "", v.get("name") or "")
    if run is None:
        return {
            "model": {
                "id": "UHJvamVjdDox",
                "name": v.get("project"),
                "entity": {"id": "x", "name": s.entity},
                "bucket": None,
            }
        }
    bucket = _bucket(run)
    bucket.update({"wandbConfig": json.dumps({}), "config": bucket["config"]})
    return {
        "model": {
            "id": "UHJvamVjdDox",
            "name": run.project,
            "entity": {"id": "x", "name": run.entity},
            "bucket": bucket,
        }
    }


@_op("CreateRunFiles")
def _op_create_run_files(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    entity, project, run_id = v.get("entity") or s.entity, v.get("project") or "", v.get("run") or ""
    run = s.store.get_run(entity, project, run_id)
    if run is None:
        raise GraphQLError(f"run {entity}/{project}/{run_id} not found")
    base = f"{s.base_url}/upload/{quote(entity)}/{quote(project)}/{quote(run_id)}"
    return {
        "createRunFiles": {
            "runID": run.storage_id,
            "uploadHeaders": [],
            "files": [{"name": name, "uploadUrl": f"{base}/{quote(name)}"} for name in v.get("files") or []],
        }
    }


_FILTER_FIELDS: dict[str, Callable[[RunRecord], Any]] = {
    "tags": lambda r: r.tags,
    "sweep": lambda r: r.sweep,
    "state": lambda r: r.state,
    "group": lambda r: r.group,
    "jobType": lambda r: r.job_type,
    "name": lambda r: r.id,
    "displayName": lambda r: r.display_name or r.id,
    "display_name": lambda r: r.display_name or r.id,
}


def run_matches(run: RunRecord, flt: Any) -> bool:
    """Whether a run matches a W&B (Mongo-style) runs filter: `$and`/`$or`/`$nor`, field names such as
    tags, sweep, state, group, name, `config.X` and `summary_metrics.X`, and the usual `$` operators."""
    if not flt:
        return True
    if not isinstance(flt, dict):
        raise GraphQLError(f"stand-in: unsupported runs filter {flt!r}")
    for key, cond in flt.items():
        if key == "$and":
            ok = all(run_matches(run, c) for c in cond)
        elif key == "$or":
            ok = any(run_matches(run, c) for c in cond)
        elif key == "$nor":
            ok = not any(run_matches(run, c) for c in cond)
        else:
            ok = _field_matches(_field_value(run, key), cond)
        if not ok:
            return False
    return True


def _field_value(run: RunRecord, key: str) -> Any:
    if key in _FILTER_FIELDS:
        return _FILTER_FIELDS[key](run)
    for prefix, source in (
        ("config.", run.config),
        ("summary_metrics.", run.summary),
        ("summary.", run.summary),
    ):
        if key.startswith(prefix):
            value: Any = source
            for part in key[len(prefix) :].split("."):
                if part == "value" and not isinstance(value, dict):
                    break
                value = value.get(part) if isinstance(value, dict) else None
            return value
    raise GraphQLError(f"stand-in: unsupported runs filter field {key!r}")


def _field_matches(value: Any, cond: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(cond, dict):
        return cond in values
    for op, arg in cond.items():
        if op == "$in":
            ok = any(x in arg for x in values)
        elif op == "$nin":
            ok = not any(x in arg for x in values)
        elif op == "$eq":
            ok = arg in values
        elif op == "$ne":
            ok = arg not in values
        elif op == "$exists":
            ok = (value is not None) == bool(arg)
        elif op == "$regex":
            ok = any(isinstance(x, str) and re.search(arg, x) for x in values)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            cmp = {
                "$gt": lambda a, b: a > b,
                "$gte": lambda a, b: a >= b,
                "$lt": lambda a, b: a < b,
                "$lte": lambda a, b: a <= b,
            }[op]
            ok = any(x is not None and cmp(x, arg) for x in values)
        else:
            raise GraphQLError(f"stand-in: unsupported filter operator {op!r}")
        if not ok:
            return False
    return True


def _run_node(run: RunRecord) -> dict[str, Any]:
    return {
        "__typename": "Run",
        "projectId": "1",
        "id": run.storage_id,
        "tags": run.tags,
        "name": run.id,
        "displayName": run.display_name or run.id,
        "sweepName": run.sweep,
        "state": run.state,
        "config": json.dumps(run.raw_config or _raw(run.config)),
        "group": run.group,
        "jobType": run.job_type,
        "commit": None,
        "readOnly": False,
        "createdAt": run.created_at,
        "heartbeatAt": run.heartbeat_at,
        "description": run.notes,
        "notes": run.notes,
        "systemMetrics": "{}",
        "summaryMetrics": json.dumps(run.summary),
        "historyLineCount": len(run.history),
        "user": {"name": "Atlas Test", "username": run.entity},
        "historyKeys": None,
        "exitcode": run.exitcode,
    }


@_op("Runs")
def _op_runs(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    entity = _check_entity(s, v.get("entity"))
    flt = v.get("filters")
    flt = json.loads(flt) if isinstance(flt, str) else flt
    runs = [r for r in s.store.project_runs(entity, v.get("project") or "") if run_matches(r, flt)]
    runs.sort(key=lambda r: r.created_at, reverse=not str(v.get("order") or "").startswith("+"))
    start = int(v["cursor"]) if v.get("cursor") else 0
    per_page = int(v.get("perPage") or 50)
    page = runs[start : start + per_page]
    end = start + len(page)
    return {
        "project": {
            "__typename": "Project",
            "internalId": "UHJvamVjdDox",
            "runCount": len(runs),
            "readOnly": False,
            "runs": {
                "edges": [{"node": _run_node(r), "cursor": str(start + i + 1)} for i, r in enumerate(page)],
                "pageInfo": {"endCursor": str(end), "hasNextPage": end < len(runs)},
            },
        }
    }


@_op("Run", "RunState", "QueryRunInfo")
def _op_run(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    entity = _check_entity(s, v.get("entity"))
    run = s.store.get_run(entity, v.get("project") or "", v.get("name") or v.get("run") or "")
    return {"project": {"run": _run_node(run) if run else None}}


@_op("DeleteRun")
def _op_delete_run(s: StandinServer, v: dict[str, Any], q: str) -> Any:
    if not s.store.delete_run(str(v.get("id"))):
        raise GraphQLError(f"run {v.get('id')!r} not found")
    return {"deleteRun": {"clientMutationId": None}}


def start_standin(
    *, host: str = "127.0.0.1", port: int = 0, entity: str = DEFAULT_ENTITY, api_key: str = DEFAULT_API_KEY
) -> StandinServer:
    """Start a stand-in on host:port (0 = a free port) in a background thread."""
    return StandinServer(host=host, port=port, entity=entity, api_key=api_key).start()

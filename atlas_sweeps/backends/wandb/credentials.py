"""W&B credentials on this machine and a quick check of them against the server, without importing wandb:
the key comes from ``WANDB_API_KEY`` or the netrc entry ``wandb login`` writes (machine = host[:port]).
The key is only ever held in memory and sent as HTTP Basic auth, over https or to a loopback address only;
it is never written anywhere."""

from __future__ import annotations

import base64
import ipaddress
import json
import netrc
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atlas_sweeps.errors import BackendError, UsageError

DEFAULT_BASE_URL = "https://api.wandb.ai"
QUICK_TIMEOUT = 8.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(url: str) -> str | None:
    """Why the API key must not be sent to ``url`` (not http(s), or plain http off this machine), or None."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        return f"expected an https:// URL such as {DEFAULT_BASE_URL}"
    if scheme == "http" and not is_loopback(host):
        return (f"plain http to {host} would send the W&B API key unencrypted: use https (plain http only to "
                "a loopback address such as http://127.0.0.1:8080, e.g. through an SSH tunnel)")
    return None


def resolve_base_url(base_url: str | None = None) -> str:
    """The W&B API server: the given URL (profile), else ``$WANDB_BASE_URL``, else the hosted service.
    UsageError, before any key is read, when the key would travel unencrypted."""
    url = (base_url or os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    problem = base_url_problem(url)
    if problem:
        where = "the profile's [wandb] base_url" if base_url else "WANDB_BASE_URL"
        raise UsageError(f"refusing W&B server {url} ({where}): {problem}")
    return url


def netrc_machine(base_url: str) -> str:
    """The netrc ``machine`` name wandb uses for a server: its host and port, as in the URL."""
    return urlsplit(base_url).netloc


def netrc_path() -> Path:
    """The netrc file wandb reads: ``$NETRC``, else ``~/.netrc``."""
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()


def find_api_key(base_url: str) -> str | None:
    """The API key for ``base_url`` from ``WANDB_API_KEY`` or the netrc file, or None."""
    key = os.environ.get("WANDB_API_KEY")
    if key:
        return key.strip()
    try:
        creds = netrc.netrc(str(netrc_path())).authenticators(netrc_machine(base_url))
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return creds[2] if creds and creds[2] else None


def app_url(base_url: str) -> str:
    """The web UI's address for an API server (cloud: ``api.wandb.ai`` → ``wandb.ai``; self-hosted: same)."""
    if "://api.wandb." in base_url:
        return base_url.replace("://api.", "://")
    if "://api." in base_url:
        return base_url.replace("://api.", "://app.")
    return base_url


def login_hint(base_url: str) -> str:
    """What to run to fix missing or wrong credentials."""
    return f"run 'wandb login --relogin --host {base_url}' or set WANDB_API_KEY"


@dataclass(frozen=True)
class Viewer:
    """Who the key belongs to: the user name, the default entity and the teams it may write to."""

    username: str | None
    entity: str | None
    teams: tuple[str, ...]

    def can_use(self, entity: str) -> bool:
        return entity in {self.username, self.entity, *self.teams}


class GraphQLClient:
    """One-shot GraphQL POSTs with a hard timeout and no retries, so every failure shows in seconds
    (the wandb client retries refused connections and 5xx answers for a minute or more)."""

    def __init__(self, *, base_url: str, api_key: str, timeout: float = QUICK_TIMEOUT) -> None:
        self.base_url = base_url
        self._auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode()
        self.timeout = timeout

    def execute(self, query: str, variables: dict[str, Any], *, operation: str) -> dict[str, Any]:
        """The ``data`` of the answer; BackendError for a refused key, an unreachable server or errors."""
        body = json.dumps({"query": query, "variables": variables, "operationName": operation}).encode()
        request = urllib.request.Request(f"{self.base_url}/graphql", data=body, method="POST", headers={
            "Authorization": self._auth, "Content-Type": "application/json", "User-Agent": "atlas-sweeps"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise BackendError(f"W&B server {self.base_url} refused the API key (HTTP {exc.code})",
                                   hint=login_hint(self.base_url)) from None
            raise BackendError(f"W&B server {self.base_url} answered HTTP {exc.code} to {operation}",
                               hint="check the server's status and WANDB_BASE_URL / the profile's "
                                    "[wandb] base_url") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"cannot reach the W&B server {self.base_url}: {reason}",
                               hint="check the address (WANDB_BASE_URL or the profile's [wandb] base_url) "
                                    "and your network") from None
        errors = payload.get("errors") or []
        if errors:
            message = "; ".join(str(e.get("message", e)) for e in errors)
            raise BackendError(f"W&B server {self.base_url}: {operation} failed: {message}")
        return payload.get("data") or {}


_VIEWER_QUERY = """
query Viewer {
    viewer { id username entity teams { edges { node { name } } } }
}
"""


def client_for(base_url: str | None, *, timeout: float = QUICK_TIMEOUT) -> GraphQLClient:
    """A client for the resolved server with the local key; BackendError saying how to log in if none."""
    url = resolve_base_url(base_url)
    key = find_api_key(url)
    if not key:
        raise BackendError(f"no W&B API key for {url} on this machine (WANDB_API_KEY is unset and "
                           f"{netrc_path()} has no entry for {netrc_machine(url)})", hint=login_hint(url))
    return GraphQLClient(base_url=url, api_key=key, timeout=timeout)


def check_viewer(client: GraphQLClient) -> Viewer:
    """Who the key logs in as; BackendError when the server does not accept it."""
    data = client.execute(_VIEWER_QUERY, {}, operation="Viewer")
    viewer = data.get("viewer")
    if not viewer:
        raise BackendError(f"W&B server {client.base_url} did not accept the API key",
                           hint=login_hint(client.base_url))
    teams = tuple(str(e["node"]["name"]) for e in (viewer.get("teams") or {}).get("edges") or []
                  if e.get("node") and e["node"].get("name"))
    return Viewer(username=viewer.get("username"), entity=viewer.get("entity"), teams=teams)

"""The W&B API key travels over https, or to this machine only: checked before any key is read."""

from __future__ import annotations

import pytest

from atlas_sweeps.backends.wandb.credentials import base_url_problem, client_for, resolve_base_url
from atlas_sweeps.errors import UsageError


@pytest.mark.parametrize("url", ["https://api.wandb.ai", "https://wandb.example.org:8443", "http://127.0.0.1:8080",
                                 "http://127.9.9.9", "http://localhost:8080", "http://LOCALHOST", "http://[::1]:80"])
def test_https_and_loopback_are_accepted(url: str) -> None:
    assert base_url_problem(url) is None


@pytest.mark.parametrize(("url", "expected"), [
    ("http://wandb.example.org", "plain http to wandb.example.org"),
    ("http://10.0.0.5:8080", "plain http to 10.0.0.5"),
    ("http://127.0.0.1.evil.example.org", "plain http to 127.0.0.1.evil.example.org"),
    ("http://localhost.evil.example.org", "plain http to localhost.evil.example.org"),
    ("ftp://wandb.example.org", "expected an https:// URL"),
    ("wandb.example.org", "expected an https:// URL"),
    ("https://[::1", "expected an https:// URL"),
])
def test_other_servers_are_refused(url: str, expected: str) -> None:
    assert expected in (base_url_problem(url) or "")


def test_environment_url_is_refused_before_the_key_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.example.org")
    monkeypatch.setenv("WANDB_API_KEY", "secret-key")
    with pytest.raises(UsageError, match=r"refusing W&B server http://wandb.example.org \(WANDB_BASE_URL\)") as info:
        client_for(None)
    assert info.value.exit_code == 2 and "secret-key" not in str(info.value)
    with pytest.raises(UsageError, match="the profile's \\[wandb\\] base_url"):
        resolve_base_url("http://other.example.org")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:8080/")
    assert client_for(None).base_url == "http://127.0.0.1:8080"


def test_the_wandb_backend_refuses_too() -> None:
    from atlas_sweeps.backends.wandb.backend import WandbBackend

    with pytest.raises(UsageError, match="plain http to collector.example.org"):
        WandbBackend(base_url="http://collector.example.org", dry_run=True)

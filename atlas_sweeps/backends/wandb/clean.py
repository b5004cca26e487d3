"""``clean``: find the W&B runs that carry a tag (e.g. ``dev_tests``) and delete them, replacing the original
``clean_wdb.py``. Finding and deleting are separate steps so the CLI can show the list and ask first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atlas_sweeps.backends.wandb.credentials import check_viewer, client_for, resolve_base_url
from atlas_sweeps.errors import BackendError


@dataclass(frozen=True)
class TaggedRun:
    """One run found by tag: what the user needs to recognise it."""

    id: str
    name: str
    state: str
    created: str
    tags: tuple[str, ...]
    group: str | None
    sweep: str | None


@dataclass(frozen=True)
class CleanPlan:
    """The runs in ``entity/project`` that carry ``tag``; ``handles`` are the wandb objects to delete."""

    base_url: str
    entity: str
    project: str
    tag: str
    runs: tuple[TaggedRun, ...]
    handles: tuple[Any, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.project}"


def find_tagged_runs(*, tag: str, project: str, entity: str | None, base_url: str | None) -> CleanPlan:
    """Every run of ``entity/project`` with ``tag``; the key and server are checked first, in seconds."""
    from atlas_sweeps.backends.wandb.backend import wandb_environment

    url = resolve_base_url(base_url)
    viewer = check_viewer(client_for(url))
    entity = entity or viewer.entity or viewer.username
    if not entity:
        raise BackendError(f"no W&B entity given and {url} reports no default one",
                           hint="pass --entity or set WANDB_ENTITY")
    with wandb_environment(url):
        import wandb

        try:
            api = wandb.Api(overrides={"base_url": url, "entity": entity}, timeout=20)
            handles = list(api.runs(f"{entity}/{project}", filters={"tags": {"$in": [tag]}}, per_page=200))
        except Exception as exc:  # wandb raises CommError/ValueError/...; all mean "could not list"
            raise BackendError(f"could not list the runs of {entity}/{project} on {url}: {exc}") from None
    runs = tuple(_summary(run) for run in handles)
    return CleanPlan(base_url=url, entity=entity, project=project, tag=tag, runs=runs, handles=tuple(handles))


def delete_runs(plan: CleanPlan) -> int:
    """Delete every run of ``plan``; returns how many were deleted (stops at the first failure)."""
    from atlas_sweeps.backends.wandb.backend import wandb_environment

    deleted = 0
    with wandb_environment(plan.base_url):
        for handle, run in zip(plan.handles, plan.runs, strict=True):
            try:
                handle.delete()
            except Exception as exc:  # noqa: BLE001 - reported with what was done so far
                raise BackendError(f"deleting run {run.id} of {plan.path} failed after {deleted} of "
                                   f"{len(plan.runs)} were deleted: {exc}",
                                   hint="run the same clean command again to delete the rest") from None
            deleted += 1
    return deleted


def _summary(run: Any) -> TaggedRun:
    return TaggedRun(id=str(run.id), name=str(getattr(run, "name", "") or run.id),
                     state=str(getattr(run, "state", "") or ""),
                     created=str(getattr(run, "created_at", "") or ""),
                     tags=tuple(getattr(run, "tags", ()) or ()), group=getattr(run, "group", None),
                     sweep=_sweep_name(run))


def _sweep_name(run: Any) -> str | None:
    try:
        sweep = getattr(run, "sweep_name", None)
    except Exception:  # noqa: BLE001 - optional detail
        return None
    return str(sweep) if sweep else None

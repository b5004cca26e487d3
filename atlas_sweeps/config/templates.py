"""Rendering sbatch scripts (pure). Two kinds of template: Jinja2 (``*.j2``, the shipped default) and a plain
sbatch file whose last ``wandb agent`` line is replaced by the job's run command, as the original workflow did.
Jinja2 templates render in Jinja2's sandbox whoever wrote them (a cloned repository may ship one), and are
tried once at load, so a template reaching for Python internals fails before anything is contacted."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from atlas_sweeps.errors import ConfigError

DEFAULT_TEMPLATE = "default.sbatch.j2"
_AGENT_LINE = re.compile(r"\bwandb\s+agent\b.*$")


@dataclass(frozen=True)
class Template:
    """A loaded template: its text, where it came from, and whether it is Jinja2 or a plain sbatch file."""

    text: str
    origin: str
    jinja: bool


@dataclass(frozen=True)
class ScriptContext:
    """Everything one job script needs. ``run_command`` is already shell-quoted; ``setup`` lines are the
    user's own shell code and go in verbatim."""

    launch_id: str
    sweep_name: str
    backend: str
    directives: tuple[str, ...]
    setup: tuple[str, ...]
    env: dict[str, str]
    snapshot: str
    run_preamble: tuple[str, ...]
    run_command: str


def shipped_template_dir() -> Path:
    """The directory of the templates that ship with the package (``sbatch_templates/``)."""
    return Path(str(resources.files("atlas_sweeps") / "sbatch_templates"))


def load_template(path: str | None, *, base_dir: Path | None = None) -> Template:
    """Load the profile's template (a path, or the name of a shipped one), or the default."""
    name = path or DEFAULT_TEMPLATE
    candidates = [Path(name).expanduser()]
    if base_dir is not None and not Path(name).is_absolute():
        candidates.insert(0, base_dir / name)
    candidates.append(shipped_template_dir() / name)
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text()
            is_jinja = candidate.suffix == ".j2" or "{{" in text or "{%" in text
            if not is_jinja and _agent_line_index(text.splitlines()) is None:
                raise ConfigError("plain sbatch template has no 'wandb agent' line to replace",
                                  path=str(candidate),
                                  hint="add a 'wandb agent <agent_id>' line where the job should run, "
                                       "or use a Jinja2 template with {{ run_command }}")
            template = Template(text=text, origin=str(candidate), jinja=is_jinja)
            if is_jinja:
                _try_in_sandbox(template)
            return template
    shipped = ", ".join(sorted(p.name for p in shipped_template_dir().iterdir() if p.is_file()))
    raise ConfigError(f"sbatch template not found: {name}",
                      hint=f"give a path to a file, or one of the shipped templates: {shipped}")


def render_script(template: Template, context: ScriptContext) -> str:
    """The job script for ``context``."""
    if template.jinja:
        return _render_jinja(template, context)
    return _render_plain(template, context)


_SAMPLE = ScriptContext(
    launch_id="sample", sweep_name="sample", backend="local", directives=("--time=01:00:00",), setup=("true",),
    env={"ATLAS_LAUNCH": "sample", "ATLAS_SWEEP": "sample", "WANDB_PROJECT": "sample"}, snapshot="/tmp",
    run_preamble=("true",), run_command="true",
)


def _try_in_sandbox(template: Template) -> None:
    """Render once with sample values, so syntax errors and sandbox violations show at load; other failures
    (a variable the sample lacks) are left to the real render, which reports them with the job's values."""
    from jinja2.sandbox import SecurityError

    compiled = _compile(template)
    try:
        compiled.render(**vars(_SAMPLE))
    except SecurityError as exc:
        raise _refused(template, exc) from None
    except Exception:  # noqa: BLE001, S110 - reported by the real render
        pass


def _compile(template: Template):  # type: ignore[no-untyped-def]
    """The Jinja2 template in a sandboxed environment (immutable: a template cannot change its values)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                        autoescape=False)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    try:
        return env.from_string(template.text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template syntax error: {exc.message}", path=template.origin, line=exc.lineno,
                          hint="fix the template") from None


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised on (Jinja2 maps its frames to ``<template>`` lines)."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _refused(template: Template, exc: Exception) -> ConfigError:
    return ConfigError(f"template refused by Jinja2's sandbox: {exc}", path=template.origin,
                       line=_template_line(exc),
                       hint="a template may use its variables and filters, not Python internals")


def _render_jinja(template: Template, context: ScriptContext) -> str:
    import jinja2
    from jinja2.sandbox import SecurityError

    compiled = _compile(template)
    try:
        return compiled.render(**vars(context))
    except SecurityError as exc:
        raise _refused(template, exc) from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template uses an unknown variable: {exc.message}", path=template.origin,
                          line=_template_line(exc), hint="known: " + ", ".join(sorted(vars(context)))) from None
    except Exception as exc:  # noqa: BLE001 - the template's own failure (1/0, a bad filter argument)
        raise ConfigError(f"template failed to render: {type(exc).__name__}: {exc}", path=template.origin,
                          line=_template_line(exc), hint="fix the template") from None


def _agent_line_index(lines: list[str]) -> int | None:
    """The index of the last uncommented line that runs ``wandb agent``."""
    hits = [i for i, line in enumerate(lines) if _AGENT_LINE.search(line) and not line.lstrip().startswith("#")]
    return hits[-1] if hits else None


def _render_plain(template: Template, context: ScriptContext) -> str:
    lines = template.text.splitlines()
    index = _agent_line_index(lines)
    assert index is not None  # load_template checked
    start = index
    while start > 0 and lines[start - 1].rstrip().endswith("\\") and not lines[start - 1].lstrip().startswith("#"):
        start -= 1  # the agent line continues an earlier one (a container prefix): insert before all of it
    inserted = ["# --- added by atlas-sweeps: launch " + context.launch_id + ", sweep " + context.sweep_name,
                *context.setup]
    inserted += [f"export {name}={shlex.quote(value)}" for name, value in context.env.items()]
    inserted += [f"cd {shlex.quote(context.snapshot)}", *context.run_preamble, "# --- end of atlas-sweeps lines"]
    lines[index] = _AGENT_LINE.sub(lambda _m: context.run_command, lines[index])
    # The profile's directives go first, so the template's own #SBATCH lines (read later) win.
    head = 1 if lines and lines[0].startswith("#!") else 0
    directives = [f"#SBATCH {d}" for d in context.directives]
    body = lines[head:start] + inserted + lines[start:]
    return "\n".join(lines[:head] + directives + body) + "\n"

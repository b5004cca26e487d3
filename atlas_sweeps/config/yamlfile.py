"""YAML loading for user-written files: line numbers for every key, duplicate keys refused, and
YAML 1.2 floats (`1e-5` is a float, not the string PyYAML's YAML 1.1 rules make of it)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atlas_sweeps.errors import ConfigError

KeyPath = tuple[Hashable, ...]

# PyYAML's YAML 1.1 float pattern needs a dot and a signed exponent, so `1e-5` and `5e3` stay strings.
# This is YAML 1.2's core-schema float (plus 1.1's `.inf`/`.nan` spellings and `_` separators).
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


@dataclass(frozen=True)
class LineMap:
    """1-based source lines of the keys (and list items) of a loaded document, by key path."""

    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, *path: Hashable, default: int = 1) -> int:
        """Line of ``path`` or, when it has none, of its nearest ancestor that has one."""
        key = tuple(_norm(p) for p in path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), default)


def _norm(part: Hashable) -> Hashable:
    """List indices stay ints; mapping keys compare as text, so `1:` is found as 1 or "1"."""
    return part if isinstance(part, int) and not isinstance(part, bool) else str(part)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats; resolvers are copied so the global SafeLoader is untouched."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _scan(path: Path, node: yaml.Node, lines: dict[KeyPath, int]) -> None:
    """Record key lines and refuse duplicate keys, walking the node tree once (aliases visited once)."""
    seen: set[int] = set()

    def walk(n: yaml.Node, at: KeyPath) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in n.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                text = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
                line = key_node.start_mark.line + 1
                if text in first:
                    raise ConfigError(
                        f"duplicate key {text!r} (first defined on line {first[text]})",
                        path=str(path), line=line,
                        hint="YAML keeps only one of them; remove or rename one",
                    )
                first[text] = line
                child = at + (text,)
                lines.setdefault(child, line)
                walk(value_node, child)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines.setdefault(at + (i,), item.start_mark.line + 1)
                walk(item, at + (i,))

    lines[()] = node.start_mark.line + 1
    walk(node, ())


# Values that aliases may add to a document (each alias counts every value under its anchor, once per use).
# `<<: *defaults` and a few reuses stay far below; a "billion laughs" alias bomb is refused before it expands.
MAX_ALIASED_VALUES = 100_000


def _check_aliases(path: Path, root: yaml.Node) -> None:
    """Refuse aliases that expand the document beyond ``MAX_ALIASED_VALUES`` values (an alias bomb: a few
    hundred bytes that construct, copy or print into gigabytes) or that refer to a value containing them.
    Sizes are counted once per node, so the check is linear in the file however far aliases would expand."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliased = 0
    biggest: tuple[int, int] = (0, root.start_mark.line + 1)  # (values, line) of the largest alias use

    def size(n: yaml.Node, line: int) -> int:
        nonlocal aliased, biggest
        key = id(n)
        if key in open_nodes:
            raise ConfigError("an alias refers to a value that contains it (a structure without end)",
                              path=str(path), line=line, hint="alias a value defined before and outside it")
        if key in sizes:  # a node met again is an alias use
            aliased += sizes[key]
            biggest = max(biggest, (sizes[key], line))
            return sizes[key]
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        elif isinstance(n, yaml.MappingNode):
            children = [part for pair in n.value for part in pair]
        total = 1 + sum(size(child, child.start_mark.line + 1) for child in children)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, root.start_mark.line + 1)
    if aliased > MAX_ALIASED_VALUES:
        raise ConfigError(f"aliases expand this file by {aliased:,} values (more than {MAX_ALIASED_VALUES:,}); "
                          "refused as an alias bomb", path=str(path), line=biggest[1],
                          hint="write the values out, or alias fewer and smaller ones")


def loads_yaml(text: str, *, path: Path | str = "<string>") -> tuple[Any, LineMap]:
    """Parse YAML text (see :func:`load_yaml`); ``path`` only names the source in messages."""
    path = Path(path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[KeyPath, int] = {}
        if node is None:
            return None, LineMap(lines)
        _check_aliases(path, node)
        _scan(path, node, lines)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"YAML syntax error: {what}", path=str(path), line=line,
                          hint="fix the YAML (indentation, quoting, ':' after keys)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", path=str(path),
                          hint="fix the YAML") from None
    finally:
        loader.dispose()
    return data, LineMap(lines)


def load_yaml(path: Path) -> tuple[Any, LineMap]:
    """Load one YAML document from ``path`` with its key lines; any problem is a ConfigError at file:line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(path), hint="check the path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", path=str(path),
                          hint="save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", path=str(path),
                          hint="check the path and its permissions") from None
    return loads_yaml(text, path=path)

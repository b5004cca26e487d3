"""YAML loading: line numbers, duplicate keys, YAML 1.2 floats, syntax errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.config.yamlfile import load_yaml, loads_yaml
from atlas_sweeps.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, value", [
    ("1e-5", 1e-5), ("5e3", 5000.0), ("1E+4", 10000.0), ("-2.5e-3", -2.5e-3), ("1.0", 1.0),
    (".5", 0.5), ("3.", 3.0), (".inf", float("inf")),
])
def test_exponent_floats_load_as_floats(text: str, value: float) -> None:
    data, _ = loads_yaml(f"lr: {text}\n")
    assert isinstance(data["lr"], float) and data["lr"] == value


@pytest.mark.parametrize("text, value", [
    ("42", 42), ("'1e-5'", "1e-5"), ("e5", "e5"), ("1e", "1e"), ("v1.2.3", "v1.2.3"), ("true", True),
    ("1_000", 1000), ("0x10", 16),
])
def test_other_scalars_keep_their_types(text: str, value: object) -> None:
    data, _ = loads_yaml(f"x: {text}\n")
    assert data["x"] == value and type(data["x"]) is type(value)


def test_loader_change_does_not_leak_into_pyyaml() -> None:
    import yaml

    assert yaml.safe_load("x: 1e-5") == {"x": "1e-5"}


def test_line_map_gives_lines_of_keys_and_list_items(tmp_path: Path) -> None:
    path = _write(tmp_path, "program: main.py\nparameters:\n  hp1:\n    values:\n    - 1\n    - 2\n")
    data, lines = load_yaml(path)
    assert data == {"program": "main.py", "parameters": {"hp1": {"values": [1, 2]}}}
    assert lines.line("parameters") == 2
    assert lines.line("parameters", "hp1") == 3
    assert lines.line("parameters", "hp1", "values", 1) == 6
    # unknown paths fall back to the nearest known ancestor
    assert lines.line("parameters", "hp1", "nope") == 3


def test_duplicate_key_names_file_and_line_of_second(tmp_path: Path) -> None:
    path = _write(tmp_path, "program: main.py\nparameters:\n  hp1: 1\n  hp2: 2\n  hp1: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(path)
    assert exc.value.line == 5
    assert str(exc.value).startswith(f"{path}:5: duplicate key 'hp1' (first defined on line 3)")


def test_duplicate_subtest_keys_are_caught(tmp_path: Path) -> None:
    path = _write(tmp_path, "parameters:\n  subtests:\n    a,b:\n      x: 1\n    a,b:\n      x: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'a,b'") as exc:
        load_yaml(path)
    assert exc.value.line == 5


def test_merge_keys_are_not_duplicates() -> None:
    data, _ = loads_yaml("base: &b {x: 1, y: 2}\nover:\n  <<: *b\n  x: 3\n")
    assert data["over"] == {"x": 3, "y": 2}


def test_syntax_error_has_file_line_and_yaml_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "program: main.py\nparameters:\n  hp1: [1, 2\n  hp2: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(path)
    message = str(exc.value)
    assert message.startswith(f"{path}:4: YAML syntax error")
    assert "flow sequence" in message


def test_tab_indentation_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "parameters:\n\thp1: 1\n")
    with pytest.raises(ConfigError, match=r"sweep.yml:2: YAML syntax error"):
        load_yaml(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yml")
    bad = tmp_path / "bin.yml"
    bad.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(bad)


def test_empty_document_is_none() -> None:
    assert loads_yaml("# only a comment\n")[0] is None

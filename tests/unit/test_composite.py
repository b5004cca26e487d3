"""The composite sweep file: merge rules, shorthand, names, trials, nodes, and every validation error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atlas_sweeps.config.composite import load_composite, resolve_config_path
from atlas_sweeps.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SAFE = re.compile(r"[A-Za-z0-9_.-]+\Z")


def write(tmp_path: Path, text: str, name: str = "sweep.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str, **kwargs: object) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_composite(path, **kwargs)  # type: ignore[arg-type]
    assert exc.value.path == str(path)
    return exc.value


def test_composite_grid_gives_two_tagged_sweeps_with_shared_parameters() -> None:
    composite = load_composite(CONFIGS / "composite_grid.yml")
    assert [s.tags for s in composite.sweeps] == [("iso_tests", "hp1_iso"), ("iso_tests", "hp2_iso")]
    first, second = composite.sweeps
    assert first.config == {
        "program": "main.py", "method": "grid",
        "parameters": {"seed": {"value": 42}, "wdb_entity": {"value": "socialiq"}, "tags": {"value": "test"},
                       "hp1": {"values": [1, 2, 3]}, "hp2": {"value": 4}},
    }
    assert second.config["parameters"]["hp1"] == {"value": 1}
    assert second.config["parameters"]["seed"] == {"value": 42}
    assert [s.name for s in composite.sweeps] == ["composite_grid_iso_tests-hp1_iso",
                                                  "composite_grid_iso_tests-hp2_iso"]
    assert [s.line for s in composite.sweeps] == [14, 23]
    assert all(s.num_nodes is None and not s.name.endswith("-t0") for s in composite.sweeps)


def test_plain_wandb_file_is_one_untagged_sweep_named_after_the_file() -> None:
    (sweep,) = load_composite(CONFIGS / "simple_grid.yml").sweeps
    assert sweep.tags == () and sweep.name == "simple_grid"
    assert sweep.config["parameters"]["hp1"] == {"values": [1, 2, 3]}


def test_simple_grid_plus_matches_simple_grid_but_tagged() -> None:
    (plus,) = load_composite(CONFIGS / "simple_grid_plus.yml").sweeps
    (plain,) = load_composite(CONFIGS / "simple_grid.yml").sweeps
    assert plus.tags == ("tag_name1", "tag_name2")
    assert plus.config == plain.config


def test_subtest_overrides_shared_and_shorthand_is_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, """\
program: train.py
method: grid
metric: {name: loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 3}
project: proj
parameters:
  lr: 1e-5
  hp1: [1, 2]
  opt:
    parameters:
      name: [adam, sgd]
      beta: 0.9
  subtests:
    " a , b ":
      hp1: 7
      extra: {values: [x, y]}
""")
    (sweep,) = load_composite(path).sweeps
    assert sweep.tags == ("a", "b")
    assert sweep.config["metric"] == {"name": "loss", "goal": "minimize"}
    assert sweep.config["early_terminate"] == {"type": "hyperband", "min_iter": 3}
    assert sweep.config["project"] == "proj"
    assert sweep.config["parameters"] == {
        "lr": {"value": 1e-5},
        "hp1": {"value": 7},
        "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}, "beta": {"value": 0.9}}},
        "extra": {"values": ["x", "y"]},
    }


def test_tags_param_is_opt_in(tmp_path: Path) -> None:
    (sweep,) = load_composite(CONFIGS / "composite_continued.yml", tags_param="_tags").sweeps
    assert sweep.config["parameters"]["_tags"] == {"value": "iso_tests,hp1_iso"}
    assert "_tags" not in load_composite(CONFIGS / "composite_continued.yml").sweeps[0].config["parameters"]


def test_tags_param_clash_with_a_real_parameter(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  _tags: 1\n", tags_param="_tags")
    assert "'_tags' is set in the file" in exc.message


def test_num_trials_copies_and_num_nodes(tmp_path: Path) -> None:
    path = write(tmp_path, """\
program: p.py
method: grid
_num_trials: 2
parameters:
  seed: 1
  subtests:
    a:
      x: [1, 2]
      _num_nodes: 4
    b:
      x: 3
      _num_trials: {value: 3}
""")
    sweeps = load_composite(path).sweeps
    assert [(s.name, s.num_nodes) for s in sweeps] == [
        ("sweep_a-t0", 4), ("sweep_a-t1", 4), ("sweep_b-t0", None), ("sweep_b-t1", None), ("sweep_b-t2", None),
    ]
    for s in sweeps:
        assert "_num_trials" not in s.config and "_num_trials" not in s.config["parameters"]
        assert "_num_nodes" not in s.config["parameters"]
    # copies do not share mutable config
    sweeps[0].config["parameters"]["x"]["values"].append(99)
    assert sweeps[1].config["parameters"]["x"]["values"] == [1, 2]


def test_shared_num_nodes_and_trials_apply_to_every_subtest(tmp_path: Path) -> None:
    path = write(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  _num_nodes: 2\n  _num_trials: 1\n"
                           "  subtests:\n    a: {x: 1}\n    b: {x: 2, _num_nodes: 5}\n")
    assert [(s.name, s.num_nodes) for s in load_composite(path).sweeps] == [("sweep_a-t0", 2), ("sweep_b-t0", 5)]


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "two", "true", "{values: [1, 2]}"])
def test_num_nodes_must_be_a_positive_int(tmp_path: Path, value: str) -> None:
    exc = error(tmp_path, f"program: p.py\nmethod: grid\nparameters:\n  subtests:\n    a:\n      x: 1\n"
                          f"      _num_nodes: {value}\n")
    assert exc.line == 7 and "_num_nodes must be a positive integer" in exc.message


def test_num_trials_must_be_a_positive_int(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\n_num_trials: 0\nparameters:\n  x: 1\n")
    assert exc.line == 3 and "_num_trials" in exc.message


def test_hostile_tags_give_safe_distinct_names_and_keep_tags_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, """\
program: p.py
method: grid
parameters:
  subtests:
    "a;b": {x: 1}
    "a:b": {x: 2}
    "$(rm -rf ~),`id`": {x: 3}
    "with space,'quote\\"": {x: 4}
    "héllo,日本": {x: 5}
    "a-b": {x: 6}
    "a,b": {x: 7}
    "-rf": {x: 8}
""")
    sweeps = load_composite(path).sweeps
    names = [s.name for s in sweeps]
    assert len(set(names)) == len(names)
    assert all(SAFE.match(n) for n in names)
    assert [s.tags for s in sweeps] == [("a;b",), ("a:b",), ("$(rm -rf ~)", "`id`"),
                                        ("with space", "'quote\""), ("héllo", "日本"), ("a-b",), ("a", "b"),
                                        ("-rf",)]
    # "a;b" and "a:b" both map to a_b: the text changed, so a hash tells them apart
    assert names[0].startswith("sweep_a_b-") and names[1].startswith("sweep_a_b-")
    # "a-b" and ("a","b") would both be sweep_a-b: both get a hash
    assert names[5] != names[6] and names[5].startswith("sweep_a-b-")
    assert names[7] == "sweep_-rf"


def test_long_tags_are_cut_and_hashed(tmp_path: Path) -> None:
    long = "t" * 300
    path = write(tmp_path, f"program: p.py\nmethod: grid\nparameters:\n  subtests:\n    {long}: {{x: 1}}\n")
    (sweep,) = load_composite(path).sweeps
    assert len(sweep.name) < 120 and sweep.tags == (long,)


def test_unsafe_file_stem_is_sanitised(tmp_path: Path) -> None:
    path = write(tmp_path, "program: p.py\nmethod: grid\nparameters: {x: 1}\n", name="-my grid$.yml")
    assert load_composite(path).sweeps[0].name == "_my_grid_"


def test_trial_suffix_cannot_collide_with_a_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n"
                           "    a: {x: 1, _num_trials: 1}\n    a-t0: {x: 2}\n")
    names = [s.name for s in load_composite(path).sweeps]
    assert len(set(names)) == 2


# --- errors: each names the file, the right line, and what to do -----------------------------------

def test_not_a_mapping(tmp_path: Path) -> None:
    exc = error(tmp_path, "- a\n- b\n")
    assert exc.line == 1 and "not a mapping" in exc.message
    assert "empty" in error(tmp_path, "# nothing\n").message


def test_empty_subtests(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  seed: 1\n  subtests: {}\n")
    assert exc.line == 5 and "`subtests` is empty" in exc.message and exc.hint


def test_empty_subtest(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    a: {x: 1}\n    b:\n")
    assert exc.line == 6 and "subtest 'b' is empty" in exc.message


def test_empty_values(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  hp1:\n    values: []\n")
    assert exc.line == 5 and "values is empty" in exc.message


def test_empty_values_inside_a_subtest(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    a:\n      hp1: []\n")
    assert exc.line == 6 and "values is empty" in exc.message


def test_unknown_method_suggests(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: gird\nparameters: {x: 1}\n")
    assert exc.line == 2 and "unknown method 'gird'" in exc.message and "'grid'" in exc.message


def test_missing_method(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nparameters: {x: 1}\n")
    assert "no `method`" in exc.message and "method: grid" in (exc.hint or "")


def test_bayes_without_metric(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: bayes\nparameters: {x: [1, 2]}\n")
    assert exc.line == 2 and "needs a `metric`" in exc.message


def test_parameter_that_is_not_a_parameter(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  hp1:\n    valeus: [1, 2]\n")
    assert exc.line == 5 and "unknown key 'valeus'" in exc.message and "'values'" in exc.message
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  hp1:\n")
    assert exc.line == 4 and "has no value" in exc.message
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  hp1: {distribution: unifrom}\n")
    assert "unknown distribution 'unifrom'" in exc.message and "'uniform'" in exc.message
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  'bad name': 1\n")
    assert "not allowed by W&B" in exc.message


def test_unknown_top_level_key_did_you_mean(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparamters: {x: 1}\nparameters: {x: 1}\n")
    assert exc.line == 3 and "unknown top-level key 'paramters'" in exc.message
    assert "did you mean 'parameters'?" in (exc.hint or "")
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters: {x: 1}\nsubtests: {a: {x: 1}}\n")
    assert exc.line == 4 and "inside `parameters:`" in (exc.hint or "")


def test_known_wandb_keys_pass_through(tmp_path: Path) -> None:
    path = write(tmp_path, """\
program: p.py
method: random
name: my sweep
description: d
entity: e
project: p
run_cap: 5
controller: {type: cloud}
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - --fixed
  - ${args_no_hyphens}
  - ${envvar:HOME}
parameters: {x: [1, 2]}
""")
    (sweep,) = load_composite(path).sweeps
    assert sweep.config["name"] == "my sweep" and sweep.config["run_cap"] == 5
    assert sweep.config["command"][3] == "--fixed"


def test_program_missing(tmp_path: Path) -> None:
    exc = error(tmp_path, "method: grid\nparameters: {x: 1}\n")
    assert "no `program`" in exc.message
    exc = error(tmp_path, "method: grid\ncommand:\n  - ${env}\n  - ${program}\nparameters: {x: 1}\n")
    assert "no `program`" in exc.message
    path = write(tmp_path, "method: grid\ncommand:\n  - bash\n  - run.sh\n  - ${args}\nparameters: {x: 1}\n")
    assert load_composite(path).sweeps[0].config["command"] == ["bash", "run.sh", "${args}"]


def test_unknown_command_macro(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\ncommand:\n  - ${interpreter}\n  - ${progam}\n"
                          "parameters: {x: 1}\n")
    assert exc.line == 5 and "'${progam}'" in exc.message and "'program'" in exc.message


def test_empty_tag(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    'a,,b': {x: 1}\n")
    assert exc.line == 5 and "empty tag" in exc.message
    assert "empty tag" in error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n"
                                          "    ' ': {x: 1}\n").message


def test_same_tag_set_twice(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    a,b: {x: 1}\n"
                          "    b, a: {x: 2}\n")
    assert exc.line == 6 and "same tags as 'a,b'" in exc.message


def test_duplicate_key_in_file(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  x: 1\n  x: 2\n")
    assert exc.line == 5 and "duplicate key 'x'" in exc.message


def test_error_message_format_is_file_line_what_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests: {}\n")
    with pytest.raises(ConfigError) as exc:
        load_composite(path)
    assert str(exc.value).startswith(f"{path}:4: `subtests` is empty (add at least one subtest")
    assert exc.value.exit_code == 2


# --- resolve_config_path --------------------------------------------------------------------------

def test_suffix_is_optional(tmp_path: Path) -> None:
    target = write(tmp_path, "x: 1\n", name="composite_grid.yml")
    assert resolve_config_path("composite_grid", cwd=tmp_path) == target
    assert resolve_config_path("composite_grid.yml", cwd=tmp_path) == target
    assert resolve_config_path(str(target)) == target
    other = write(tmp_path, "x: 1\n", name="other.yaml")
    assert resolve_config_path("other", cwd=tmp_path) == other


def test_missing_and_ambiguous_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found \(tried nope, nope.yml, nope.yaml"):
        resolve_config_path("nope", cwd=tmp_path)
    write(tmp_path, "x: 1\n", name="both.yml")
    write(tmp_path, "x: 1\n", name="both.yaml")
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_config_path("both", cwd=tmp_path)
    with pytest.raises(ConfigError, match="directory"):
        resolve_config_path(".", cwd=tmp_path)


def test_grid_over_a_distribution_is_caught_at_load_with_the_subtest_line(tmp_path: Path) -> None:
    exc = error(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    a: {x: 1}\n"
                          "    b:\n      lr: {distribution: uniform, min: 0, max: 1}\n")
    assert exc.line == 6 and "cannot enumerate" in exc.message and "method: random" in (exc.hint or "")
    exc = error(tmp_path, "program: p.py\nmethod: random\nparameters:\n  n: {min: 3, max: 1}\n")
    assert exc.line == 3 and "min 3 is greater than max 1" in exc.message


def test_int_subtest_key_is_a_tag(tmp_path: Path) -> None:
    path = write(tmp_path, "program: p.py\nmethod: grid\nparameters:\n  subtests:\n    1: {x: 1}\n    2:\n")
    with pytest.raises(ConfigError) as exc:
        load_composite(path)
    assert exc.value.line == 6 and "subtest '2' is empty" in exc.value.message

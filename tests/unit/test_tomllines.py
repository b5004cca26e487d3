"""Line numbers of TOML keys, for file:line in profile errors (tomllib gives none)."""

from __future__ import annotations

from atlas_sweeps.config.tomllines import key_line

TEXT = '''\
# comment: host = "not this"
host = "login"
notes = """
port = 1
"""
[clusters.'a b']
setup = ["x"]
slurm.partition = "gpu"
wandb = { project = "p" }

[ clusters . "a b" . slurm ]
time = "1:00"
[[clusters.list]]
port = 3
'''


def test_finds_plain_dotted_quoted_and_inline_keys() -> None:
    assert key_line(TEXT, ("host",)) == 2
    assert key_line(TEXT, ("clusters", "a b", "setup")) == 7
    assert key_line(TEXT, ("clusters", "a b", "slurm", "partition")) == 8
    assert key_line(TEXT, ("clusters", "a b", "wandb", "project")) == 9  # the inline table's line
    assert key_line(TEXT, ("clusters", "a b", "slurm", "time")) == 12
    assert key_line(TEXT, ("clusters", "a b")) == 6


def test_skips_multiline_strings_and_comments_and_falls_back_to_the_table() -> None:
    assert key_line(TEXT, ("port",)) is None  # only inside a string and an array of tables
    assert key_line(TEXT, ("clusters", "a b", "slurm", "mem")) == 11  # absent: its table's header
    assert key_line(TEXT, ("nothing",)) is None

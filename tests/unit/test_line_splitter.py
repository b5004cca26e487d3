"""``LineSplitter``: the one place a streamed remote output becomes lines (``\\n``, ``\\r\\n``, lone ``\\r``),
with a bound on a line's length; and ``LocalRemote.stream_script`` using it on real bash output."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_sweeps.remote.base import LineSplitter
from atlas_sweeps.remote.local import LocalRemote


def split(chunks: list[bytes], *, limit: int = 65536) -> list[str]:
    splitter = LineSplitter(limit=limit)
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.close()


def test_newline_crlf_and_lone_cr_each_end_a_line() -> None:
    assert split([b"a\nb\r\nc\rd"]) == ["a", "b", "c", "d"]
    assert split([b"\r0%\r50%\r100%\n"]) == ["", "0%", "50%", "100%"]
    assert split([b"x\n\n"]) == ["x", ""]


@pytest.mark.parametrize("cut", range(1, 9))
def test_chunk_boundaries_change_nothing(cut: int) -> None:
    data = b"ab\r\ncd\r\r\nef\rgh\n"
    assert split([data[:cut], data[cut:]]) == ["ab", "cd", "", "ef", "gh"]
    assert split([bytes([b]) for b in data]) == ["ab", "cd", "", "ef", "gh"]


def test_crlf_split_between_chunks_is_one_line_end_and_the_line_comes_at_the_cr() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"progress 10%\r") == ["progress 10%"]  # shown at once, not when the next byte comes
    assert splitter.feed(b"\nnext\n") == ["next"]
    assert splitter.feed(b"") == [] and splitter.close() == []


def test_multibyte_characters_split_between_chunks_survive() -> None:
    text = "température ✓\n".encode()
    assert split([text[:12], text[12:15], text[15:]]) == ["température ✓"]


def test_a_line_longer_than_the_limit_is_passed_on_cut_and_its_rest_dropped() -> None:
    splitter = LineSplitter(limit=10)
    assert splitter.feed(b"0123456") == []
    assert splitter.feed(b"789ABCDEF") == ["0123456789"]  # at the limit, before the line ends
    assert splitter.feed(b"GHIJ" * 1000) == []  # never kept
    assert splitter.feed(b"KL\nshort\n") == ["short"]
    assert split([b"0123456789\n"], limit=10) == ["0123456789"]  # exactly the limit: whole
    assert split([b"x" * 25], limit=10) == ["x" * 10]  # cut, then the stream ends


def test_a_cut_line_cannot_smuggle_its_rest_as_a_line_of_its_own() -> None:
    # What a job prints after the limit must never start a line (a fact line must start with our prefix).
    assert split([b"L " + b"y" * 20 + b"ATLAS final xyz\n"], limit=16) == ["L " + "y" * 14]


def test_local_stream_script_gives_cr_separated_output_as_lines(tmp_path: Path) -> None:
    remote = LocalRemote(home=tmp_path)
    seen: list[str] = []
    code = remote.stream_script("printf 'start\\n'; for i in 1 2 3; do printf '\\r%s%%' $i; done; printf '\\ndone'",
                                on_stdout=seen.append)
    assert code == 0
    assert seen == ["start", "", "1%", "2%", "3%", "done"]


def test_local_stream_script_bounds_an_endless_line(tmp_path: Path) -> None:
    remote = LocalRemote(home=tmp_path)
    seen: list[str] = []
    code = remote.stream_script("head -c 3000000 /dev/zero | tr '\\0' x; printf '\\nend\\n'", on_stdout=seen.append)
    assert code == 0 and seen == ["x" * 65536, "end"]

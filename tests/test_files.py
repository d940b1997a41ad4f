"""engine.files: atomic writes keep the old content on failure and honour the umask; folders swap whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine import files


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_replaces_content_with_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    previous = os.umask(0o027)
    try:
        files.write_atomic(target, "first\n")
        files.write_atomic(target, "second é\n")
    finally:
        os.umask(previous)
    assert target.read_text(encoding="utf-8") == "second é\n"
    assert _mode(target) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temp file left behind


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    files.write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        files.write_json_atomic(target, {"a": object()})  # not JSON: fails before anything is written
    with pytest.raises(TypeError):
        files.write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_file_sha256_matches_a_known_digest(tmp_path: Path) -> None:
    target = tmp_path / "abc"
    target.write_bytes(b"abc")
    assert files.file_sha256(target) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_atomic_folder_swaps_the_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with files.atomic_folder(target) as staging:
        (staging / "one.txt").write_text("1")
    with files.atomic_folder(target) as staging:
        assert not target.joinpath("two.txt").exists()
        (staging / "two.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["two.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_folder_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with files.atomic_folder(target) as staging:
        (staging / "kept.txt").write_text("old")
    with pytest.raises(RuntimeError), files.atomic_folder(target) as staging:
        (staging / "half.txt").write_text("new")
        raise RuntimeError("training crashed")
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_resolve_from_takes_relative_paths_from_the_base(tmp_path: Path) -> None:
    assert files.resolve_from("data/qa.jsonl", tmp_path) == str(tmp_path / "data" / "qa.jsonl")
    assert files.resolve_from("/abs/qa.jsonl", tmp_path) == "/abs/qa.jsonl"
    assert files.resolve_from("~/qa.jsonl", tmp_path) == str(Path.home() / "qa.jsonl")
    assert files.resolve_from("", tmp_path) == ""

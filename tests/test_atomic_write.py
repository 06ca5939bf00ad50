"""training.atomic_write: readers see the old file or the whole new one; failures and discards leave no trace."""
import os

import pytest

from training.atomic_write import atomic_path, write_bytes_atomic, write_text_atomic


def test_write_replaces_the_whole_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_text_atomic(target, "old")
    write_bytes_atomic(target, b"new", mode=0o644)
    assert target.read_bytes() == b"new" and os.stat(target).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_deleting_the_temp_file_discards_the_candidate(tmp_path):
    target = tmp_path / "model.int8.onnx"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"candidate")
        tmp.unlink()
    assert not target.exists() and list(tmp_path.iterdir()) == []

"""The agent's unpack refuses an archive over its limits before writing anything."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from qwex_core.agent.unpack import UnpackedTooLarge, unpack


def archive(path: Path, sizes: list[int]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"f{i}")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    return str(path)


def test_the_unpacked_size_and_the_file_count_are_limited(tmp_path: Path) -> None:
    bomb = archive(tmp_path / "bomb.tar.gz", [10, 5000, 10])
    with pytest.raises(UnpackedTooLarge, match="more than 4096 bytes") as caught:
        unpack(bomb, str(tmp_path / "a"), max_bytes=4096)
    assert caught.value.what == "bytes" and caught.value.limit == 4096
    with pytest.raises(UnpackedTooLarge, match="more than 2 files"):
        unpack(bomb, str(tmp_path / "b"), max_files=2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert unpack(bomb, str(tmp_path / "c"), max_bytes=5020, max_files=3) == 3
    assert (tmp_path / "c" / "f1").stat().st_size == 5000


def test_a_huge_header_is_refused_and_a_long_name_still_unpacks(tmp_path: Path) -> None:
    long = tmp_path / "long.tar.gz"
    with tarfile.open(long, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("/".join(["n" * 100] * 3))  # a pax header: a long path
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert unpack(str(long), str(tmp_path / "ok")) == 1
    assert (tmp_path / "ok" / ("n" * 100) / ("n" * 100) / ("n" * 100)).read_bytes() == b"abc"

    huge = tmp_path / "huge.tar.gz"
    with tarfile.open(huge, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * (2 << 20)}  # read whole by tarfile
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnpackedTooLarge, match=r"tar header .* over 1048576 bytes") as caught:
        unpack(str(huge), str(tmp_path / "no"))
    assert caught.value.what == "header"

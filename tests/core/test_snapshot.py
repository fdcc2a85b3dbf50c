"""Project snapshots: what goes in, that an unchanged tree keeps its sha256, limits."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from qwex_core import snapshot as snap
from qwex_core.agent.unpack import unpack
from qwex_core.errors import QwexError, SnapshotTooLarge
from qwex_core.snapshot import Snapshot, make_snapshot

LIMIT = 1 << 20


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def members(s: Snapshot) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(s.data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def file_names(s: Snapshot) -> set[str]:
    return {name for name, m in members(s).items() if not m.isdir()}


def test_gitignore_qwexignore_and_the_stores_are_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n/top-only.txt\n",
            ".qwexignore": "data/\n!important.log\n",
            "train.py": "print('hi')\n",
            "build/out.bin": "x",
            "run.log": "x",
            "important.log": "kept: .qwexignore wins over .gitignore",
            "top-only.txt": "x",
            "pkg/top-only.txt": "kept: the pattern is anchored at the root",
            "data/huge.csv": "x",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".qwex/runs/r1/run.json": "{}",
            "pkg/.git": "gitdir: ../.git/modules/pkg\n",
        },
    )
    s = make_snapshot(tmp_path, limit=LIMIT)
    assert file_names(s) == {
        ".gitignore",
        ".qwexignore",
        "train.py",
        "important.log",
        "pkg/top-only.txt",
    }
    assert s.files == 5
    assert s.size == sum((tmp_path / n).stat().st_size for n in file_names(s))


def test_nested_gitignore_applies_below_its_directory_and_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "*.csv\ncache/\n",
            "a/.gitignore": "!keep.csv\n/local.txt\n",
            "a/keep.csv": "kept: re-included by the nested file",
            "a/drop.csv": "x",
            "a/local.txt": "x",
            "a/b/local.txt": "kept: the nested pattern is anchored at a/",
            "b/keep.csv": "x",
            "cache/.gitignore": "!*\n",
            "cache/inside.py": "x: a file cannot be re-included below an excluded directory",
        },
    )
    assert file_names(make_snapshot(tmp_path, limit=LIMIT)) == {
        ".gitignore",
        "a/.gitignore",
        "a/keep.csv",
        "a/b/local.txt",
    }


def checkout(root: Path) -> Path:
    write(root, {"src/app.py": "print(1)\n", "README.md": "# r\n", "empty.txt": ""})
    write(root, {f"pkg/mod{i:03}.py": f"X = {i}\n" for i in range(50)})
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o775)
    os.symlink("src/app.py", root / "app")
    return root


def test_unchanged_tree_same_sha256_whatever_the_mtimes_and_modes(tmp_path: Path) -> None:
    one, two = checkout(tmp_path / "one"), checkout(tmp_path / "two")
    for i, path in enumerate(sorted(p for p in two.rglob("*") if not p.is_symlink())):
        os.utime(path, (1_000_000 + i, 2_000_000 + i * 7))
    (two / "README.md").chmod(0o600)  # not executable: stored 0644 all the same
    first, second = make_snapshot(one, limit=LIMIT), make_snapshot(two, limit=LIMIT)
    assert first.sha256 == second.sha256 and first.data == second.data
    assert make_snapshot(one, limit=LIMIT).sha256 == first.sha256
    (two / "src/app.py").write_text("print(2)\n")
    assert make_snapshot(two, limit=LIMIT).sha256 != first.sha256


def test_archive_is_normalised_and_unpacks_with_the_executable_bit(tmp_path: Path) -> None:
    s = make_snapshot(checkout(tmp_path / "p"), limit=LIMIT)
    assert s.data[4:8] == b"\0\0\0\0"  # gzip header mtime
    got = members(s)
    names = list(got)
    assert names == sorted(names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in got.values()} == {(0, 0, 0, "", "")}
    assert got["run.sh"].mode == 0o755 and got["README.md"].mode == 0o644
    assert got["app"].issym() and got["app"].linkname == "src/app.py"
    (tmp_path / "out").mkdir()
    (tmp_path / "s.tar.gz").write_bytes(s.data)
    unpack(str(tmp_path / "s.tar.gz"), str(tmp_path / "out"))
    assert os.access(tmp_path / "out/run.sh", os.X_OK)
    assert (tmp_path / "out/run.sh").stat().st_mtime > time.time() - 600  # not 1970
    assert not os.access(tmp_path / "out/README.md", os.X_OK)
    assert (tmp_path / "out/app").read_text() == "print(1)\n"


def test_symlinks_leading_outside_the_tree_are_left_out(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "secret"
    write(outside, {"key": "s3cr3t"})
    write(project, {"code/main.py": "x", "code/other.py": "y"})
    os.symlink(outside / "key", project / "abs-out")
    os.symlink("../secret/key", project / "rel-out")
    os.symlink("code/..", project / "code-up")  # inside after all
    os.symlink("code-up/..", project / "through-link")  # resolves to tmp_path: outside
    os.symlink(project / "code" / "main.py", project / "abs-in")
    os.symlink(outside, project / "dir-out")
    os.symlink("code", project / "dir-in")
    got = members(make_snapshot(project, limit=LIMIT))
    links = {name: m.linkname for name, m in got.items() if m.issym()}
    assert links == {"abs-in": "code/main.py", "code-up": "code/..", "dir-in": "code"}
    assert not any(name.startswith("dir-in/") for name in got)  # a link, not entered


def test_too_large_names_size_limit_biggest_files_and_alternatives(tmp_path: Path) -> None:
    sizes = {"data/a.bin": 60_000, "data/b.bin": 50_000, "c.bin": 40_000, "d/e.bin": 30_000}
    sizes |= {"f.bin": 20_000, "g.bin": 10_000, "small.py": 100}
    for rel, n in sizes.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(os.urandom(n))
    with pytest.raises(SnapshotTooLarge) as caught:
        make_snapshot(tmp_path, limit=100_000)
    err = caught.value
    assert isinstance(err, QwexError)
    message = str(err)
    assert err.size_is_exact and err.size > 210_000 and err.limit == 100_000
    assert f"{err.size / 1024:.1f} KiB compressed" in message
    assert "over the limit of 97.7 KiB" in message
    for rel, n in [("data/a.bin", 60_000), ("data/b.bin", 50_000), ("f.bin", 20_000)]:
        assert f"{rel} ({n / 1024:.1f} KiB)" in message
    assert "g.bin" not in message and "small.py" not in message
    assert err.biggest[0] == ("data/a.bin", 60_000) and len(err.biggest) == 5
    assert ".qwexignore" in message and "PVC" in message and "in the image" in message
    (tmp_path / ".qwexignore").write_text("*.bin\n")
    assert file_names(make_snapshot(tmp_path, limit=100_000)) == {".qwexignore", "small.py"}


def test_a_huge_tree_stops_compressing_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit, only a bounded amount more is read: the size is then a lower bound."""
    monkeypatch.setattr(snap, "EXTRA_SCAN", 200_000)
    (tmp_path / "big.bin").write_bytes(os.urandom(4_000_000))
    with pytest.raises(SnapshotTooLarge) as caught:
        make_snapshot(tmp_path, limit=50_000)
    assert not caught.value.size_is_exact
    assert caught.value.size < snap.CHUNK + 400_000  # not the 4 MB it would be
    assert "is more than" in str(caught.value) and "big.bin (3.8 MiB)" in str(caught.value)


def test_a_few_thousand_files(tmp_path: Path) -> None:
    write(tmp_path, {f"d{i % 40}/f{i}.py": f"x = {i}\n" * 3 for i in range(3000)})
    shutil.copytree(tmp_path / "d0", tmp_path / "node_modules")
    (tmp_path / ".gitignore").write_text("node_modules/\n")
    s = make_snapshot(tmp_path, limit=LIMIT)
    assert s.files == 3001

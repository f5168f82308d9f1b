"""Bundle archives: deterministic packing, and extraction that refuses hostile members."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from bench.results import archive, bundle
from bench.errors import BenchError
from helpers import REPO

PUBLISHED = REPO / "results" / "published" / "mini-fast-cpu"


def test_pack_is_deterministic_and_unpacks_to_a_bundle_that_verifies(tmp_path):
    first = archive.pack(PUBLISHED, tmp_path / "a.tar.gz")
    second = archive.pack(PUBLISHED, tmp_path / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()
    unpacked = archive.unpack(first, tmp_path / "out")
    assert unpacked == tmp_path / "out" / PUBLISHED.name
    assert bundle.verify(unpacked).ok
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(p.name for p in PUBLISHED.iterdir())


def hostile(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "hostile.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("bundle/result.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("info, reason", [
    (member("/etc/evil"), "an absolute path"),
    (member("bundle/../../evil"), "leaves the bundle"),
    (member("../evil"), "leaves the bundle"),
    (member("bundle/link", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
    (member("bundle/rel", tarfile.SYMTYPE, "../../outside"), "a link"),
    (member("bundle/hard", tarfile.LNKTYPE, "/etc/passwd"), "a link"),
    (member("bundle/dev", tarfile.CHRTYPE), "not a regular file"),
    (member("bundle/sub/deep"), "nested deeper"),
])
def test_hostile_members_are_refused_before_anything_is_written(tmp_path, info, reason):
    dest = tmp_path / "dest"
    with pytest.raises(BenchError, match=reason) as caught:
        archive.unpack(hostile(tmp_path, info), dest)
    assert "nothing was extracted" in str(caught.value)
    assert not dest.exists()
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_an_archive_with_two_top_directories_or_garbage_is_refused(tmp_path):
    with pytest.raises(BenchError, match="exactly one directory"):
        archive.unpack(hostile(tmp_path, member("other/file")), tmp_path / "dest")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(BenchError, match="not a readable .tar.gz bundle"):
        archive.unpack(junk, tmp_path / "dest2")


def test_cli_verifies_archives_and_catches_a_doctored_one(tmp_path, cli):
    good = archive.pack(PUBLISHED, tmp_path / "good.tar.gz")
    assert cli("bench", "verify", str(good)).returncode == 0
    doctored = tmp_path / "doctored"
    shutil.copytree(PUBLISHED, doctored)
    result = json.loads((doctored / bundle.RESULT).read_text())
    result["throughput_img_s"] *= 2
    (doctored / bundle.RESULT).write_text(bundle.dumps(result))
    bad = archive.pack(doctored, tmp_path / "bad.tar.gz")
    proc = cli("bench", "verify", str(bad))
    assert proc.returncode == 1 and "result.json: sha256 does not match SHA256SUMS" in proc.stderr
    unpacked = cli("bench", "unpack", str(good), str(tmp_path / "u"))
    assert unpacked.returncode == 0 and bundle.verify(tmp_path / "u" / PUBLISHED.name).ok

"""Bundles as one ``.tar.gz`` file to publish, and safe extraction of one received from anyone.

Packing is deterministic (sorted names, zero times and owners), so the same bundle packs to the
same bytes. Extraction trusts nothing: a member may only be a regular file or directory inside
one top-level bundle directory; absolute paths, ``..``, links and devices are refused before
anything is written (and tarfile's ``data`` filter checks again as it extracts).

An archive may also be a URI (``s3://bucket/run.tar.gz``): how a bundle made on a cluster's head
reaches the machine that verifies it, when the head is gone with its job.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
from pathlib import Path

from bench.errors import BenchError


def _directory_and_name(uri: str):
    from data_prep.common.storage import DatasetDir

    parent, _, name = uri.rstrip("/").rpartition("/")
    return DatasetDir(parent), name


def pack(bundle_dir: Path, archive: Path | str) -> Path | str:
    files = sorted(p for p in bundle_dir.iterdir() if p.is_file() and not p.is_symlink())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tarfile.TarInfo(f"{bundle_dir.name}/{path.name}")
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as src:
                tar.addfile(info, src)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(buffer.getvalue())
    if "://" in str(archive):
        directory, name = _directory_and_name(str(archive))
        directory.write_bytes(name, packed.getvalue())  # atomic: a temporary name, then renamed
        return archive
    Path(archive).write_bytes(packed.getvalue())
    return archive


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be extracted, or None."""
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = posixpath.normpath(name).split("/")
    if ".." in name.split("/") or parts[0] in ("..", "."):
        return "a path that leaves the bundle (..)"
    if member.issym() or member.islnk():
        return f"a link (to {member.linkname})"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or directory"
    if len(parts) > 2:
        return "nested deeper than one bundle directory"
    return None


def unpack(archive: Path | str, destination: Path) -> Path:
    """Extract a packed bundle (a file, or a URI) under ``destination``; returns the bundle directory."""
    try:
        if "://" in str(archive):
            directory, name = _directory_and_name(str(archive))
            source = io.BytesIO(directory.read_bytes(name))
        else:
            source = open(archive, "rb")  # noqa: SIM115 (closed with the tar below)
        with source, tarfile.open(fileobj=source, mode="r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                reason = unsafe_member(member)
                if reason:
                    raise BenchError(f"{archive}: refusing to extract {member.name!r}: {reason}; nothing was extracted")
            tops = {member.name.split("/")[0] for member in members}
            if len(tops) != 1:
                raise BenchError(f"{archive}: a bundle archive holds exactly one directory, not {sorted(tops)}")
            top = tops.pop()
            if (destination / top).exists():
                raise BenchError(f"{destination / top} already exists; unpack somewhere else")
            destination.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # PEP 706; our own checks above stand either way
                tar.extractall(destination, members=members, filter="data")
            else:
                tar.extractall(destination, members=members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BenchError(f"{archive}: not a readable .tar.gz bundle ({exc})") from exc
    return destination / top

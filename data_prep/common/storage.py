"""Dataset directories on any pyarrow filesystem (local path, ``s3://``, ``gs://``).

Every write goes to a temporary name first and is renamed into place, so an interrupted job
never leaves a file under a final name that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import pyarrow.fs as pafs

from data_prep.common.errors import DataPrepError

TMP_SUFFIX = ".tmp"
_HASH_CHUNK = 8 << 20


S3_CONNECT_TIMEOUT_S = float(os.environ.get("RAYBENCH_S3_CONNECT_TIMEOUT_S", "10"))
S3_REQUEST_TIMEOUT_S = float(os.environ.get("RAYBENCH_S3_REQUEST_TIMEOUT_S", "60"))
S3_MAX_ATTEMPTS = int(os.environ.get("RAYBENCH_S3_MAX_ATTEMPTS", "4"))
S3_HINT = ("check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), that the bucket exists, "
           "and that the endpoint (AWS_ENDPOINT_URL) answers; timeouts and retries are bounded by "
           "RAYBENCH_S3_CONNECT_TIMEOUT_S, RAYBENCH_S3_REQUEST_TIMEOUT_S and RAYBENCH_S3_MAX_ATTEMPTS")


def s3_filesystem(uri: str) -> tuple[pafs.S3FileSystem, str]:
    """An S3 filesystem whose every request has bounded connect/request timeouts and retries,
    so a stalled or dropping server gives a clear error in bounded time, never a hang.
    Credentials come from the usual AWS chain, or from the URI (``s3://KEY:SECRET@bucket/...``)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    keys = {}
    if parts.username:
        keys = {"access_key": unquote(parts.username), "secret_key": unquote(parts.password or "")}
    bucket = parts.hostname or ""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region and not os.environ.get("AWS_ENDPOINT_URL"):
        region = pafs.resolve_s3_region(bucket)
    fs = pafs.S3FileSystem(region=region or "us-east-1", endpoint_override=os.environ.get("AWS_ENDPOINT_URL") or None,
                           connect_timeout=S3_CONNECT_TIMEOUT_S, request_timeout=S3_REQUEST_TIMEOUT_S,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS), **keys)
    return fs, (bucket + parts.path).rstrip("/")


class DatasetDir:
    """A directory addressed by a local path or URI, with atomic writes and hashing."""

    def __init__(self, location: str | os.PathLike[str]):
        location = str(location)
        if "://" in location:
            try:
                self.fs, self.root = s3_filesystem(location) if location.startswith("s3://") and "?" not in location \
                    else pafs.FileSystem.from_uri(location)
            except Exception as exc:  # pyarrow raises several types for bad URIs
                raise DataPrepError(f"cannot open {location}: {exc}") from exc
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(location)
        self.location = location

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative) if relative else self.root

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.root).type == pafs.FileType.Directory

    def ensure(self, relative: str = "") -> None:
        """Create the directory (and parents), with an error that names it if impossible."""
        try:
            self.fs.create_dir(self.path(relative), recursive=True)
            probe = self.path(posixpath.join(relative, f".write-probe-{uuid.uuid4().hex}"))
            with self.fs.open_output_stream(probe) as out:
                out.write(b"")
            self.fs.delete_file(probe)
        except OSError as exc:
            raise DataPrepError(
                f"cannot write to {self.location}/{relative}: {exc}; choose a writable --out"
            ) from exc

    def list_files(self, relative: str, suffix: str = "") -> list[str]:
        """Relative paths of the files directly under ``relative`` ending in ``suffix``."""
        selector = pafs.FileSelector(self.path(relative), allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.base_name.endswith(suffix):
                found.append(posixpath.join(relative, info.base_name))
        return sorted(found)

    def size(self, relative: str) -> int:
        return self.fs.get_file_info(self.path(relative)).size

    def read_bytes(self, relative: str) -> bytes:
        # compression=None: the bytes as stored (pyarrow would otherwise gunzip a .gz on the fly).
        with self.fs.open_input_stream(self.path(relative), compression=None) as src:
            return src.read()

    def sha256(self, relative: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self.path(relative), compression=None) as src:
            while chunk := src.read(_HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    @contextmanager
    def atomic_writer(self, relative: str) -> Iterator[BinaryIO]:
        """Yield a stream to a temporary file that becomes ``relative`` only on success."""
        final = self.path(relative)
        tmp = f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            with self.fs.open_output_stream(tmp, compression=None) as out:
                yield out
            self.fs.move(tmp, final)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self.atomic_writer(relative) as out:
            out.write(data)

    def remove_stale_temporaries(self, relative: str) -> int:
        """Delete temporaries an interrupted run left behind; returns how many."""
        stale = self.list_files(relative, TMP_SUFFIX)
        for name in stale:
            self.fs.delete_file(self.path(name))
        return len(stale)

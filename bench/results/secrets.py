"""Keep credentials out of bundles: scrub URIs, and record only allow-listed variables."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_NAME = re.compile(r"(key|secret|token|passw|pwd|signature|credential|auth|session)", re.I)
# Variables worth recording for reproducibility; nothing else from the environment is kept.
ENV_ALLOW = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NVIDIA_VISIBLE_DEVICES",
             "NVIDIA_DRIVER_CAPABILITIES", "RAY_ADDRESS", "BENCH_DATA_DIR", "TORCH_HOME")


def scrub_uri(uri: str) -> str:
    """Drop user:password@ and secret-looking query parameters from a URI."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode([(k, v if not _SECRET_NAME.search(k) else "REDACTED") for k, v in parse_qsl(parts.query)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def allowed_environment() -> dict[str, str]:
    return {name: scrub_uri(os.environ[name]) for name in ENV_ALLOW if name in os.environ}

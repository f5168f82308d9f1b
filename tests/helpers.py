"""What many tests use: the repository, running the CLIs as a user would, small datasets, a
tiny disk, and the independent references (plain PyTorch) that answers are checked against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(tool: str, *args: str, check: bool = False, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script as a user would (real exit codes, real stderr)."""
    exe = Path(sys.executable).parent / tool
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextmanager
def tmpfs(mount: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` at ``mount``, for full-disk faults (skips where it cannot be
    mounted: it needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def ray_actors() -> list[dict]:
    """Every actor the connected Ray has created, alive or dead, from the GCS's actor table (Ray's
    state API reads the same table, but needs the dashboard, which the tests' Ray does not start)."""
    from ray._private import state

    return list(state.actors().values())


def synth_dataset(out: Path, images: int, rows_per_shard: int = 8, *extra: str) -> Path:
    """A small synthetic data-prep dataset, made through the CLI as a user would."""
    run_cli("data-prep", "synth", "--images", str(images), "--rows-per-shard", str(rows_per_shard),
            "--out", str(out), "-q", *extra, check=True)
    return out


def plain_pytorch_logits(data: Path) -> dict[str, np.ndarray]:
    """The independent reference: torchvision's own model and transforms, image by image, on a
    raw dataset's shards read with plain pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from torchvision.models import resnet50
    from torchvision.transforms import CenterCrop, Normalize

    from data_prep.common.shard_format import image_array_to_numpy

    torch.manual_seed(0)
    model = resnet50(weights=None).eval()
    table = pa.concat_tables([pq.read_table(p) for p in sorted(Path(data).glob("shards/*.parquet"))])
    images = image_array_to_numpy(table.column("image"))
    normalise = Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    logits = {}
    with torch.inference_mode():
        for ident, image in zip(table.column("id").to_pylist(), images):
            x = normalise(CenterCrop(224)(torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255))
            logits[ident] = model(x[None])[0].numpy()
    return logits


def bundle_logits(path: Path) -> dict[str, np.ndarray]:
    """Every image's logits from a bundle made with --save-logits."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(path) / "predictions.parquet", columns=["id", "logits"])
    values = table.column("logits").combine_chunks().flatten().to_numpy().reshape(-1, 1000)
    return dict(zip(table.column("id").to_pylist(), values))


def relative_error(got: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """The relative L2 error of all of ``got``'s logits against ``reference``'s, same ids."""
    assert sorted(got) == sorted(reference)
    ids = sorted(reference)
    ref, out = np.stack([reference[k] for k in ids]), np.stack([got[k] for k in ids])
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


PEERS_BIN = Path(__file__).resolve().parents[1] / ".venv-peers" / "bin"


def peers_or_skip() -> Path:
    """The peers' venv (`make peers`): a skip where it is missing, a failure under BENCH_REQUIRE_TOOLS=1."""
    if not (PEERS_BIN / "bench").exists():
        why = "no .venv-peers here: `make peers` makes it"
        if os.environ.get("BENCH_REQUIRE_TOOLS") == "1":
            pytest.fail(f"BENCH_REQUIRE_TOOLS=1 but {why}")
        pytest.skip(why)
    return PEERS_BIN


def version_in_peers(peers_bin: Path, library: str) -> str:
    return subprocess.run([str(peers_bin / "python"), "-c", f"import {library}; print({library}.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()

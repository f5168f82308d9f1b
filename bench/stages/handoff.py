"""What a preprocessing stage hands the model stage, and where a stage ran. No torch: the
workers that preprocess must not import it (bench.stages says why)."""

from __future__ import annotations

import socket
import sys

import numpy as np


def node_name() -> str:
    """The Ray node id when running inside Ray, else the host name. Ray is looked up, not
    imported: a process Ray runs has loaded it already, and where Ray is not installed an
    import would be tried again on every batch (from two calling threads at once, one could
    see the other's half-failed module)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def block_read() -> None:
    """Marks this process's first block read. Ray Data fuses the read into the preprocessing
    task, so a block reaching preprocessing has just been read, in this process."""
    from bench.stages.startup import preprocessing_lane

    preprocessing_lane().mark("first block read")


def preprocessed(batch: dict[str, np.ndarray], images: np.ndarray) -> dict[str, np.ndarray]:
    """A preprocessing stage's output: the batch's ids and labels, the new pixels, where, and
    this process's start-up lane on its first block (bench.stages.startup)."""
    from bench.stages.startup import COLUMN, preprocessing_lane

    lane = preprocessing_lane()
    lane.mark("first block preprocessed")
    return {
        "id": batch["id"],
        "label": batch["label"],
        "image": images,
        "preprocess_node": np.full(len(images), node_name(), dtype=object),
        COLUMN: lane.column(len(images)),
    }

"""How many CPU cores this process may really use, for sizing threads and worker processes.

``os.cpu_count()`` counts the machine's cores. A container started with ``--cpuset-cpus``
(an affinity mask) or ``--cpus N`` (a CFS quota: N cores' worth of time per period), or a
Kubernetes CPU limit, may use fewer; threads sized to the machine then share the smaller budget
and stall at every barrier when the quota throttles them. The count here is the affinity mask
(which ``--cpuset-cpus`` sets) capped by the quota as Ray reads it for a node's ``CPU``
resource (``ray._private.utils.get_num_cpus``, not a public API): truncated, at least 1. So a
model actor's torch threads match the CPUs Ray believes the node has.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its affinity mask, capped by its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """Cores' worth of CPU time per period that this cgroup may use (cgroup v2's ``cpu.max`` or
    v1's ``cpu.cfs_quota_us``/``cpu.cfs_period_us``); None when unlimited or not readable."""
    try:
        v2 = cgroup_root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us

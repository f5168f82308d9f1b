"""The cores the kit sizes its threads and workers to: the affinity mask capped by a container's
CPU quota, counted as Ray counts a node's CPUs (so a model actor's threads match them)."""

from __future__ import annotations

import pytest

from data_prep.common.cores import cpu_quota, usable_cores

EIGHT_CORES = set(range(8))


def cgroup_v2(root, cpu_max):
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root, quota_us, period_us="100000"):
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota_us + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period_us + "\n")
    return root


@pytest.mark.parametrize("make, value, quota", [
    (cgroup_v2, "max 100000", None),  # docker run without --cpus
    (cgroup_v2, "400000 100000", 4.0),  # --cpus 4
    (cgroup_v2, "150000 100000", 1.5),
    (cgroup_v1, "-1", None),
    (cgroup_v1, "250000", 2.5),
])
def test_quota_is_read_from_cgroup_v1_and_v2(tmp_path, make, value, quota):
    assert cpu_quota(make(tmp_path, value)) == quota


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cpu_quota(tmp_path) is None  # unreadable: the affinity mask alone decides


@pytest.mark.parametrize("cpu_max, cores", [("max 100000", 8), ("400000 100000", 4), ("150000 100000", 1),
                                            ("50000 100000", 1), ("1600000 100000", 8)])
def test_usable_cores_is_the_affinity_mask_capped_by_the_quota(tmp_path, monkeypatch, cpu_max, cores):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: EIGHT_CORES)
    assert usable_cores(cgroup_v2(tmp_path, cpu_max)) == cores


@pytest.mark.parametrize("make, value", [(cgroup_v2, "max 100000"), (cgroup_v2, "150000 100000"),
                                         (cgroup_v1, "-1"), (cgroup_v1, "250000")])
def test_quota_agrees_with_rays_reading_of_the_same_files(tmp_path, make, value):
    # Ray's node CPU count reads the same files (a private function, an independent reference).
    from ray._private.utils import _get_docker_cpus

    root = make(tmp_path, value)
    rays = _get_docker_cpus(cpu_quota_file_name=str(root / "cpu" / "cpu.cfs_quota_us"),
                            cpu_period_file_name=str(root / "cpu" / "cpu.cfs_period_us"),
                            cpuset_file_name=str(root / "no-cpuset"), cpu_max_file_name=str(root / "cpu.max"))
    assert cpu_quota(root) == rays

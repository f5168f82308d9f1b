"""read_shards starts only as many parquet footer readers as the files can keep busy.

Ray Data 2.60 asks for a pool of 32 FooterReader actors for every read_parquet call and gives
each 10 files at a time; bench.run.pipeline.footer_readers sizes the pool to the files for that call
(docs/performance.md, "Each optimisation").
"""

from __future__ import annotations

import os

import pytest
from bench.run.cluster import Placement
from bench.run.pipeline import FOOTER_READERS_ENV, footer_readers, read_shards

PLACEMENT = Placement(actors=1, actor_num_gpus=0, actor_num_cpus=1, device="cpu")


@pytest.fixture
def no_user_setting(monkeypatch):
    monkeypatch.delenv(FOOTER_READERS_ENV, raising=False)


@pytest.mark.parametrize("files, readers", [(1, "1"), (10, "1"), (11, "2"), (319, None)])
def test_one_reader_per_ten_files_while_read_parquet_is_called(no_user_setting, files, readers):
    """319 files want Ray's own 32 readers: the variable stays unset."""
    with footer_readers(files):
        assert os.environ.get(FOOTER_READERS_ENV) == readers
    assert FOOTER_READERS_ENV not in os.environ


def test_ray_keeps_its_pool_for_many_files_and_a_users_setting_is_kept(no_user_setting, monkeypatch):
    with footer_readers(320):
        assert FOOTER_READERS_ENV not in os.environ  # 32 readers: Ray's own default
    monkeypatch.setenv(FOOTER_READERS_ENV, "5")
    with footer_readers(2):
        assert os.environ[FOOTER_READERS_ENV] == "5"
    assert os.environ[FOOTER_READERS_ENV] == "5"


def footer_reader_actors(ray) -> int:
    """FooterReader actors this Ray instance has created so far, alive or dead."""
    from helpers import ray_actors

    return sum(1 for actor in ray_actors() if "FooterReader" in actor["ActorClassName"])


def test_a_read_of_three_files_starts_one_footer_reader_where_ray_alone_starts_32(ray_local, tmp_path,
                                                                                  no_user_setting):
    from helpers import synth_dataset

    data = synth_dataset(tmp_path / "data", 12, rows_per_shard=4)
    files = sorted(str(p) for p in data.glob("shards/*.parquet"))
    assert len(files) == 3

    before = footer_reader_actors(ray_local)
    assert len(read_shards(files, None, PLACEMENT).take_all()) == 12
    ours = footer_reader_actors(ray_local) - before

    assert len(ray_local.data.read_parquet(files).take_all()) == 12
    rays = footer_reader_actors(ray_local) - before - ours

    assert (ours, rays) == (1, 32)

"""Ray Data reads data-prep's shards as the pipeline expects: the reference schema's tensors, and
pixel shards turned into the same arrays."""

from __future__ import annotations

import numpy as np
from data_prep import synth

from helpers import synth_dataset


def test_ray_reads_a_pixels_dataset_into_the_raw_arrays(ray_local, tmp_path):
    from bench.variants import variant

    synth_dataset(tmp_path / "p", 20, 8, "--format", "pixels")
    ds = ray_local.data.read_parquet(str(tmp_path / "p"))
    preprocess = variant("fast").preprocess_for("pixels")
    seen = []
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        crops = preprocess(batch)["image"]
        for ident, crop in zip(batch["id"], crops):
            seen.append(ident)
            index = int(ident.split("-")[1])
            assert np.array_equal(crop, synth.synth_image(0, index)[16:240, 16:240])
    assert sorted(seen) == [synth.image_id(i) for i in range(20)]


def test_ray_reads_the_reference_schema(ray_local, tmp_path):
    synth_dataset(tmp_path / "d", 40, 16)
    ds = ray_local.data.read_parquet(str(tmp_path / "d"))
    batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    ids = [i for b in batches for i in b["id"]]
    assert sorted(ids) == [synth.image_id(i) for i in range(40)]
    for batch in batches:
        assert batch["image"].dtype == np.uint8
        assert batch["image"].shape[1:] == (256, 256, 3)
        first = int(batch["id"][0].split("-")[1])
        assert np.array_equal(batch["image"][0], synth.synth_image(0, first))


"""RunConfig.for_device: what a run leaves open is filled from its pipeline and device, never
what the user gave; the reference pipeline stays the reference on every device."""

from __future__ import annotations

import pytest

from bench.config import DEVICE_PROFILES, JPEG_DECODE_BATCH_SIZE, PROFILES, RunConfig
from bench.stages.precision import default_for


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_open_fields_are_filled_from_the_device_and_auto_precision_is_resolved(kind):
    config = RunConfig().for_device(kind)
    for key, value in PROFILES["fast"].items():
        assert getattr(config, key) == value, key
    for key in DEVICE_PROFILES[kind]:
        assert getattr(config, key) is not None, key
    assert config.precision == default_for(kind) != "auto"
    assert config.batch_size == DEVICE_PROFILES[kind]["batch_size"]


def test_what_the_user_gave_wins_over_every_default():
    given = dict(batch_size=7, max_concurrency=3, threaded_actors=False, precision="fp32", preprocess_batch_size=5)
    config = RunConfig(**given).for_device("cpu")
    assert {key: getattr(config, key) for key in given} == given


def test_preprocessing_takes_whole_read_blocks_unless_the_cpu_decodes_jpegs():
    # Whole blocks (None) let Ray Data fuse the preprocessing into the read tasks; decoding gets tasks of its own.
    assert RunConfig().for_data("raw").preprocess_batch_size is None
    assert RunConfig().for_data("pixels").preprocess_batch_size is None
    assert RunConfig().for_data("jpeg").preprocess_batch_size == JPEG_DECODE_BATCH_SIZE
    assert RunConfig(decode_on_device=True).for_data("jpeg").preprocess_batch_size is None  # passed on as bytes
    assert RunConfig(preprocess_batch_size=8).for_data("raw").preprocess_batch_size == 8  # given wins
    assert RunConfig(pipeline="seed").for_data("jpeg").preprocess_batch_size is None  # the reference's


def test_the_seed_pipeline_keeps_the_reference_settings_on_every_device():
    for kind in ("cpu", "cuda"):
        config = RunConfig(pipeline="seed").for_device(kind)
        assert (config.batch_size, config.precision, config.max_concurrency) == (1000, "fp32", 2)


def test_int8_is_refused_for_gpu_actors_with_the_precision_that_fits():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="CPU model actors.*fp16"):
        RunConfig(precision="int8").for_device("cuda")
    assert RunConfig(precision="int8").for_device("cpu").precision == "int8"


def test_auto_precision_on_a_cpu_is_bf16_only_where_bf16_is_native(monkeypatch):
    import torch

    for native, expected in ((True, "bf16"), (False, "int8")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert default_for("cpu") == expected

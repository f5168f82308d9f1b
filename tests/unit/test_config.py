"""bench.config: a RunConfig is checked when it is made and completed by ``resolve`` alone, from
its variant's defaults for the device and the data, never over what the user gave; the
reference stays the reference on every device; recorded configs read in today's terms."""

from __future__ import annotations

import re

import pytest

from bench.config import RunConfig, in_todays_terms, resolve
from bench.errors import BenchError
from bench.stages.precision import default_for
from bench.variants import VARIANTS, variant
from bench.variants.fast import JPEG_DECODE_BATCH_SIZE


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_open_fields_are_filled_from_the_device_and_auto_precision_is_resolved(kind):
    config = resolve(RunConfig(), kind, "raw")
    for key, value in variant("fast").device_defaults[kind].items():
        if key != "precision":
            assert getattr(config, key) == value, key
    assert config.precision == default_for(kind) != "auto"


def test_what_the_user_gave_wins_over_every_default():
    given = dict(batch_size=7, calls_per_actor=3, threaded_actors=False, precision="fp32", preprocess_batch_size=5)
    config = resolve(RunConfig(**given), "cpu", "jpeg")
    assert {key: getattr(config, key) for key in given} == given


def test_preprocessing_takes_whole_read_blocks_unless_the_cpu_decodes_jpegs():
    # Whole blocks (None) let Ray Data fuse the preprocessing into the read tasks; decoding gets tasks of its own.
    assert resolve(RunConfig(), "cpu", "raw").preprocess_batch_size is None
    assert resolve(RunConfig(), "cpu", "pixels").preprocess_batch_size is None
    assert resolve(RunConfig(), "cpu", "jpeg").preprocess_batch_size == JPEG_DECODE_BATCH_SIZE
    assert resolve(RunConfig(decode_on_device=True), "cpu", "jpeg").preprocess_batch_size is None  # bytes pass on
    assert resolve(RunConfig(pipeline="reference"), "cpu", "jpeg").preprocess_batch_size is None  # the reference's


def test_the_reference_keeps_its_settings_on_every_device_and_seed_is_its_alias():
    for kind in ("cpu", "cuda"):
        config = resolve(RunConfig(pipeline="seed"), kind, "raw")
        assert config.pipeline == "reference"
        assert (config.batch_size, config.precision, config.calls_per_actor) == (1000, "fp32", 2)


@pytest.mark.parametrize("given, message", [
    (dict(pipeline="turbo"), "unknown --pipeline 'turbo': choose one of fast, reference (also seed)"),
    (dict(device="tpu"), "unknown --device 'tpu'"),
    (dict(precision="fp8"), "unknown --precision 'fp8'"),
    (dict(batch_size=0), "batch-size must be at least 1, not 0"),
    (dict(actors=-1), "actors must be at least 1"),
    (dict(pipeline="reference", decode_on_device=True), "--decode-on-device needs --pipeline fast"),
    (dict(pipeline="seed", warm_up=True), "--warm-up is not for --pipeline reference: it keeps the reference's cold start"),
])
def test_a_config_is_checked_when_it_is_made(given, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        RunConfig(**given)


@pytest.mark.parametrize("config, kind, fmt, message", [
    (RunConfig(precision="int8"), "cuda", "raw", "CPU model actors.*fp16"),
    (RunConfig(decode_on_device=True), "cpu", "raw", "needs JPEG data, and this dataset holds raw data"),
])
def test_the_rules_that_need_the_device_or_the_data_are_checked_by_resolve(config, kind, fmt, message):
    with pytest.raises(BenchError, match=message):
        resolve(config, kind, fmt)


def test_int8_stays_on_cpus():
    assert resolve(RunConfig(precision="int8"), "cpu", "raw").precision == "int8"


def test_auto_precision_on_a_cpu_is_bf16_only_where_bf16_is_native(monkeypatch):
    import torch

    for native, expected in ((True, "bf16"), (False, "int8")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert default_for("cpu") == expected


def test_a_recorded_config_reads_in_todays_terms():
    # A bundle published before the renames (results/published/mini-seed-cpu ran with these).
    old = {"pipeline": "seed", "seed": 0, "concurrency": None, "max_concurrency": 2, "extra": {}, "batch_size": 1000}
    today = in_todays_terms(old)
    assert today["pipeline"] == "reference" and today["weights_seed"] == 0 and today["calls_per_actor"] == 2
    assert "extra" not in today and "seed" not in today and today["whole_batches"] is False  # a later setting's default
    assert RunConfig.from_dict(old) == RunConfig(pipeline="reference", calls_per_actor=2, batch_size=1000,
                                                 warm_up=False)
    assert today["warm_up"] is False  # runs from before the warm-up existed had none


def test_the_fast_pipeline_warms_up_and_the_reference_starts_cold_as_it_did():
    for kind in ("cpu", "cuda"):
        assert resolve(RunConfig(), kind, "raw").warm_up is True
        assert resolve(RunConfig(warm_up=False), kind, "raw").warm_up is False
        assert resolve(RunConfig(pipeline="reference"), kind, "raw").warm_up is False


def test_every_variant_declares_what_the_contract_asks():
    for name, chosen in VARIANTS.items():
        assert chosen.name == name and chosen.summary
        assert callable(chosen.preprocess()) and isinstance(chosen.predictor(), type)
        assert set(chosen.device_defaults) <= {"cpu", "cuda"}
        for key in {**chosen.defaults, **{k: v for d in chosen.device_defaults.values() for k, v in d.items()}}:
            assert hasattr(RunConfig(), key), f"{name} sets {key}, which RunConfig lacks"
        if chosen.decodes_on_device:
            assert callable(chosen.keep_encoded())
        else:
            with pytest.raises(NotImplementedError):
                chosen.keep_encoded()

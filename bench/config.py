"""One config object per run, recorded as-is in the bundle; defaults live in one table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

PIPELINES = ("fast", "seed")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")

# Per-pipeline defaults, like MLCommons' SUPPORTED_PROFILES. `None` means "decided from the
# cluster at run time" (see RunConfig.for_device).
PROFILES: dict[str, dict[str, Any]] = {
    # The reference benchmark, faithfully: fp32 everywhere, batch 1000, one actor per GPU with
    # max_concurrency=2, float32 tensors shipped from the preprocessing tasks to the actors.
    "seed": {"batch_size": 1000, "precision": "fp32", "max_concurrency": 2, "threaded_actors": True,
             "preprocess_batch_size": None},
    # Ours: uint8 crops through the object store, normalisation on the model's device,
    # channels_last, reduced precision; batch size, calls in flight and the thread that runs the
    # model depend on the device (DEVICE_PROFILES), the preprocessing batch size on the data
    # (RunConfig.for_data). Same function as seed at fp32.
    "fast": {},
}

# The fast pipeline's preprocessing batch size where its preprocessing decodes JPEGs on the CPU.
# A crop takes whole read blocks (None): with a batch size of its own Ray Data does not fuse it
# into the read tasks, and on GPU nodes whole images went through the object store before their
# crops did (2.3x the bytes, docs/performance.md). Decoding is the opposite case: it needs more
# cores than there are read tasks (each reads up to 128 MiB: seven 1,000-image shards of
# 256x256 JPEGs), so it gets tasks of its own.
JPEG_DECODE_BATCH_SIZE = 256

# The fast pipeline's per-device defaults (numbers in docs/performance.md).
# - cpu: small batches keep activations in cache and off the page-fault path (batch 16: ~35
#   img/s bf16 vs ~28 at batch 256 on a 2-core EPYC); two calls at once on the actor's own
#   threads (threaded_actors: Ray's enable_true_multi_threading), which split the cores between
#   them (bench.stages.common.threads_per_call): two one-thread calls run bf16 1.04-1.54x faster than
#   one two-thread call, model alone, on a 2-core Xeon. They need work for both: 16 MiB read
#   blocks (~80 raw images) instead of Ray's 128 MiB make the actor's tasks one block each,
#   where 1,024 images came as tasks of 896 and 128 images and one call ran alone most of the run.
# - cuda: big batches, and two calls at once on the actor's own threads (threaded_actors), each
#   on a CUDA stream of its own (bench.stages.fast), so that one call's host-to-device copy and
#   read of results overlap the other's forward pass: 0.86-0.87 -> 0.92-0.93 of the model-only
#   ceiling end to end on an H200 (fp16, batch 256; the stages in one process, bench/gpu_check.sh;
#   through Ray 8,392 -> 8,866-8,977 img/s streaming, bench/gpu_ray_check.sh; 2026-11-30).
#   Unthreaded, Ray overlaps only the batching of the next input with this call.
# Precision "auto" is resolved by bench.stages.precision.default_for.
DEVICE_PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {"batch_size": 16, "max_concurrency": 2, "threaded_actors": True, "precision": "auto",
            "read_block_mib": 16},
    "cuda": {"batch_size": 256, "max_concurrency": 2, "threaded_actors": True, "precision": "auto",
             "read_block_mib": 128},
}


@dataclass(frozen=True)
class RunConfig:
    pipeline: str = "fast"
    batch_size: int | None = None
    preprocess_batch_size: int | None = None
    concurrency: int | None = None  # model actors; None = one per GPU, or one CPU actor
    device: str = "auto"
    precision: str | None = None
    max_concurrency: int | None = None
    threaded_actors: bool | None = None
    read_block_mib: int | None = None  # Ray Data's target block size for the reads; None = Ray's default
    weights: str = "random"  # "random", "imagenet" or a path to a state-dict file
    seed: int = 0  # seeds the random weights
    save_logits: bool = False  # keep full logits in the predictions (for exactness checks)
    stall_timeout_s: float = 600.0  # fail loudly when no predictions arrive for this long
    decode_on_device: bool = False  # JPEG data decoded by the model actors on their device (fast only)
    whole_batches: bool = False  # crops re-cut into blocks of batch_size rows: no short batch, one more copy (bench.run.pipeline.predict)
    extra: dict[str, Any] = field(default_factory=dict)

    def with_profile(self) -> RunConfig:
        """Fill every unset field from the pipeline's profile."""
        profile = PROFILES[self.pipeline]
        return replace(self, **{k: v for k, v in profile.items() if getattr(self, k) is None})

    def for_data(self, fmt: str) -> RunConfig:
        """The fast pipeline's preprocessing batch size, unless given, for data of format
        ``fmt``: whole read blocks, or JPEG_DECODE_BATCH_SIZE where the CPU decodes JPEGs."""
        if self.pipeline != "fast" or self.preprocess_batch_size is not None:
            return self
        decodes_on_cpu = fmt == "jpeg" and not self.decode_on_device
        return replace(self, preprocess_batch_size=JPEG_DECODE_BATCH_SIZE if decodes_on_cpu else None)

    def for_device(self, kind: str) -> RunConfig:
        """Fill what the profile left open from the device's defaults, then resolve "auto"
        precision; ``kind`` is "cpu" or "cuda", where the model actors run."""
        from bench.stages.precision import default_for

        config = self.with_profile()
        if config.pipeline == "fast":
            defaults = DEVICE_PROFILES[kind]
            config = replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
        if config.precision == "auto":
            config = replace(config, precision=default_for(kind))
        if config.precision == "int8" and kind == "cuda":
            from bench.errors import BenchError

            raise BenchError("--precision int8 is for CPU model actors (torch's x86 int8 kernels); on GPUs use fp16")
        return config

    @property
    def model_calls_at_once(self) -> int:
        """Calls that run the model at once in one actor: Ray runs concurrent calls' UDFs in
        parallel only in threaded actors; otherwise they overlap batching, one forward at a time."""
        return (self.max_concurrency or 1) if self.threaded_actors else 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

"""A run's settings: one RunConfig, checked when it is made and completed in one place
(``resolve``), so that the CLI, the Python API and the measurement cases get the same checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from bench.errors import BenchError

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")

# Settings renamed since bundles were first written: a recorded config reads as today's.
RENAMED = {"seed": "weights_seed", "concurrency": "actors", "max_concurrency": "calls_per_actor"}
DROPPED = ("extra",)  # recorded by old bundles, never used
# Settings added since, as the runs that predate them ran: no warm-up before the start-up timeline.
BEFORE_RECORDED = {"warm_up": False}


@dataclass(frozen=True)
class RunConfig:
    pipeline: str = "fast"  # a variant's name or alias (bench.variants)
    batch_size: int | None = None  # images per model call; None: the variant's default for the device
    preprocess_batch_size: int | None = None  # None: whole read blocks
    actors: int | None = None  # model actors; None: one per GPU, or one per CPU node without GPUs
    device: str = "auto"  # where the model actors run: auto (GPUs if the cluster has them), cuda, cpu
    precision: str | None = None  # auto, fp32, bf16, fp16, int8; None: the variant's default
    calls_per_actor: int | None = None  # model calls one actor takes at once (Ray's max_concurrent_calls_per_actor)
    threaded_actors: bool | None = None  # run those calls on the actor's own threads, in parallel
    read_block_mib: int | None = None  # Ray Data's target block size for the reads; None: Ray's default
    weights: str = "random"  # "random" (seeded), "imagenet" or a path to a state-dict file
    weights_seed: int = 0  # seeds the random weights
    save_logits: bool = False  # keep full logits in the predictions (for exactness checks)
    stall_timeout_s: float = 600.0  # fail loudly when no predictions arrive for this long
    decode_on_device: bool = False  # JPEG bytes decoded by the model actors on their device
    whole_batches: bool = False  # crops re-cut into blocks of batch_size rows: no short batch, one more copy
    warm_up: bool | None = None  # start the workers before the timer (bench.run.warmup); None: the variant's default

    def __post_init__(self) -> None:
        """The checks that need neither the cluster nor the data; aliases become names."""
        from bench import variants

        try:
            object.__setattr__(self, "pipeline", variants.canonical(self.pipeline))
        except KeyError:
            names = ", ".join(f"{n} (also {', '.join(v.aliases)})" if v.aliases else n
                              for n, v in variants.VARIANTS.items())
            raise BenchError(f"unknown --pipeline {self.pipeline!r}: choose one of {names}") from None
        if self.device not in DEVICES:
            raise BenchError(f"unknown --device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise BenchError(f"unknown --precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("batch_size", "preprocess_batch_size", "actors", "calls_per_actor", "read_block_mib"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchError(f"{name.replace('_', '-')} must be at least 1, not {value}")
        if self.stall_timeout_s <= 0:
            raise BenchError(f"--stall-timeout must be positive, not {self.stall_timeout_s}")
        if self.decode_on_device and not variants.variant(self.pipeline).decodes_on_device:
            raise BenchError(f"--decode-on-device needs --pipeline fast: the {self.pipeline} pipeline decodes "
                             "JPEGs on the CPU, as the reference did")
        if self.warm_up and variants.variant(self.pipeline).reference_start:
            raise BenchError(f"--warm-up is not for --pipeline {self.pipeline}: it keeps the reference's cold start, "
                             "so that its figures stay comparable with the reference's")

    @classmethod
    def from_dict(cls, recorded: dict[str, Any]) -> RunConfig:
        """A config as a bundle recorded it (see in_todays_terms)."""
        values = in_todays_terms(recorded)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise BenchError(f"unknown run settings {', '.join(sorted(unknown))}: made by a newer kit?")
        return cls(**values)

    @property
    def calls_in_parallel(self) -> int:
        """Model calls that compute at once in one actor: Ray runs concurrent calls in parallel
        only on threaded actors; otherwise they overlap batching, one forward at a time."""
        return (self.calls_per_actor or 1) if self.threaded_actors else 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_todays_terms(recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded config's settings under today's names, the pipeline's alias as its name, and
    today's default for each setting it lacks (added later: the run used its default, or ran
    as BEFORE_RECORDED says). Settings this kit does not know are kept as they are."""
    from bench import variants

    values = {RENAMED.get(key, key): value for key, value in recorded.items() if key not in DROPPED}
    if values.get("pipeline") in variants.ALIASES:
        values["pipeline"] = variants.ALIASES[values["pipeline"]]
    return {**RunConfig().as_dict(), **BEFORE_RECORDED, **values}


def resolve(config: RunConfig, device: str, data_format: str) -> RunConfig:
    """``config`` completed for model actors on ``device`` ("cpu" or "cuda") and data of
    ``data_format``, and checked: the user's settings win, then the variant's defaults, its
    defaults for the device, then for the data; "auto" precision becomes the device's."""
    from bench import variants
    from bench.stages.precision import default_for

    chosen = variants.variant(config.pipeline)
    defaults = {**chosen.defaults, **chosen.device_defaults.get(device, {}),
                **chosen.data_defaults(data_format, config.decode_on_device)}
    config = replace(config, **{k: v for k, v in defaults.items() if getattr(config, k) is None})
    if config.precision in (None, "auto"):
        config = replace(config, precision=default_for(device))
    if config.precision == "int8" and device == "cuda":
        raise BenchError("--precision int8 is for CPU model actors (torch's x86 int8 kernels); on GPUs use fp16")
    if config.decode_on_device and data_format != "jpeg":
        raise BenchError(f"--decode-on-device needs JPEG data, and this dataset holds {data_format} data: make a "
                         "JPEG dataset (data-prep synth|imagenet ... --format jpeg) or drop --decode-on-device")
    return config

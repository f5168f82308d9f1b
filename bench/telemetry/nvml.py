"""GPU telemetry through NVML (nvidia-ml-py). Degrades, never crashes: a missing library or
driver, MIG, or a field a GPU does not support is recorded as unavailable with the reason,
and a GPU lost mid-run stops being sampled while the run goes on."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, Callable

from bench.telemetry import Samples

SOURCE = "gpu"


def _fields(nvml: ModuleType) -> dict[str, Callable[[Any], float]]:
    """metric name -> reader(handle). Units in the names; counters stay counters."""
    return {
        "util_pct": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "mem_used_bytes": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used,
        "power_w": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "energy_j": lambda h: nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0,
        "sm_clock_mhz": lambda h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
        "temperature_c": lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
        "pcie_rx_bytes_s": lambda h: nvml.nvmlDeviceGetPcieThroughput(h, nvml.NVML_PCIE_UTIL_RX_BYTES) * 1024.0,
        "pcie_tx_bytes_s": lambda h: nvml.nvmlDeviceGetPcieThroughput(h, nvml.NVML_PCIE_UTIL_TX_BYTES) * 1024.0,
        "throttle_reasons": lambda h: nvml.nvmlDeviceGetCurrentClocksThrottleReasons(h),
    }


def _import_nvml() -> ModuleType:
    import pynvml

    return pynvml


def probe(nvml: ModuleType | None = None) -> dict[str, Any]:
    """What NVML itself says on this node, so that a bundle tells "no GPU" from "no NVML":
    ``status`` "ok" with the driver version and GPU count, "library not found" (no NVIDIA
    driver's libnvidia-ml, or no nvidia-ml-py), or "error" with NVML's message."""
    try:
        nvml = nvml or _import_nvml()
        nvml.nvmlInit()
    except ImportError as exc:
        return {"status": "library not found", "error": f"nvidia-ml-py is not installed: {exc}"}
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, NoPermission...
        status = "library not found" if "LibraryNotFound" in type(exc).__name__ else "error"
        return {"status": status, "error": f"{type(exc).__name__}: {exc}"}
    try:
        return {"status": "ok", "driver_version": _text(nvml.nvmlSystemGetDriverVersion()),
                "gpus": int(nvml.nvmlDeviceGetCount())}
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


class GpuSampler:
    """Samples every visible GPU of this node; ``nvml`` can be injected (tests use a fake)."""

    def __init__(self, node: str, samples: Samples, nvml: ModuleType | None = None):
        self.node = node
        self.samples = samples
        self.gpus: list[dict[str, Any]] = []
        try:
            self.nvml = nvml or _import_nvml()
            self.nvml.nvmlInit()
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded...
            self.nvml = None
            samples.mark_unavailable(SOURCE, "*", f"NVML unavailable: {exc}")
            return
        self.fields = _fields(self.nvml)
        for index in range(self.nvml.nvmlDeviceGetCount()):
            handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(self.nvml.nvmlDeviceGetUUID(handle))
            if _mig_enabled(self.nvml, handle):
                samples.mark_unavailable(SOURCE, f"gpu{index}",
                                         "MIG mode: per-instance utilisation and power are not exposed by NVML")
            self.gpus.append({"index": index, "uuid": uuid, "handle": handle, "lost": False,
                              "fields": dict(self.fields)})

    def sample(self, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        for gpu in self.gpus:
            if gpu["lost"]:
                continue
            for metric, read in list(gpu["fields"].items()):
                try:
                    value = read(gpu["handle"])
                except Exception as exc:
                    if _is_gpu_lost(self.nvml, exc):
                        gpu["lost"] = True
                        self.samples.mark_unavailable(SOURCE, f"gpu{gpu['index']}", f"GPU lost during the run: {exc}")
                        break
                    # Not supported (or any other per-field error): stop asking for it.
                    del gpu["fields"][metric]
                    self.samples.mark_unavailable(SOURCE, metric, f"gpu{gpu['index']}: {exc}")
                    continue
                self.samples.add(ts, self.node, SOURCE, metric, value, device=gpu["index"], uuid=gpu["uuid"])

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_enabled(nvml: ModuleType, handle: Any) -> bool:
    try:
        current, _ = nvml.nvmlDeviceGetMigMode(handle)
        return bool(current)
    except Exception:
        return False


def _is_gpu_lost(nvml: ModuleType, exc: Exception) -> bool:
    lost = getattr(nvml, "NVMLError_GpuIsLost", None)
    return lost is not None and isinstance(exc, lost)

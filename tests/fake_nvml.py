"""A deterministic stand-in for pynvml: two GPUs whose readings follow the sample count,
plus switches for each failure NVML really produces."""

from __future__ import annotations

from types import SimpleNamespace

NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class FakeNvml:
    """Readings for GPU i at call n (n counts utilisation reads): util = 50 + 10*i, power =
    100 W + i, energy counter = 1000 J * n + 500 J * i (in mJ, as NVML reports)."""

    NVMLError = NVMLError
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_PCIE_UTIL_TX_BYTES = NVML_PCIE_UTIL_TX_BYTES
    NVML_PCIE_UTIL_RX_BYTES = NVML_PCIE_UTIL_RX_BYTES

    def __init__(self, gpus=2, missing=False, unsupported=(), lost_after=None, mig=False):
        self.gpus, self.missing, self.unsupported = gpus, missing, set(unsupported)
        self.lost_after, self.mig = lost_after, mig
        self.reads = [0] * gpus
        self.shut_down = False

    def nvmlInit(self):
        if self.missing:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self):
        return "580.95.05"

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-fake-{handle}".encode()

    def nvmlDeviceGetMigMode(self, handle):
        return (1, 1) if self.mig else (0, 0)

    def _check(self, handle, field):
        if field in self.unsupported:
            raise NVMLError_NotSupported("Not Supported")
        if self.lost_after is not None and handle == 1 and self.reads[handle] >= self.lost_after:
            raise NVMLError_GpuIsLost("GPU is lost")

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._check(handle, "util")
        self.reads[handle] += 1
        return SimpleNamespace(gpu=50 + 10 * handle, memory=20)

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._check(handle, "mem")
        return SimpleNamespace(used=(1 + handle) * 2**30 + self.reads[handle] * 2**20, total=16 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle):
        self._check(handle, "power")
        return (100 + handle) * 1000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self._check(handle, "energy")
        return (1000 * self.reads[handle] + 500 * handle) * 1000

    def nvmlDeviceGetClockInfo(self, handle, clock):
        self._check(handle, "clock")
        return 1590

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._check(handle, "temperature")
        return 60

    def nvmlDeviceGetPcieThroughput(self, handle, counter):
        self._check(handle, "pcie")
        return 1000 if counter == NVML_PCIE_UTIL_RX_BYTES else 10

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        self._check(handle, "throttle")
        return 0

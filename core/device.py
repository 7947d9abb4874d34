"""Which device a run uses, and snapshots of GPUs (NVML), CPU, RAM and the run's memory (psutil)."""

from __future__ import annotations

import functools
import os
from typing import Any

import psutil


def torch_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_name(kind: str) -> str:
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    if kind == "mps":
        return "Apple GPU (MPS)"
    import platform

    return platform.processor() or platform.machine() or "CPU"


def supported_precisions() -> list[str]:
    """Mixed-precision modes the local device can train with. Uses NVML, not torch, to stay cheap for the UI."""
    gpus = visible_gpus()
    if not gpus:
        return ["no"]
    # bf16 needs compute capability 8.0 (Ampere) or newer; fp16 works on every CUDA GPU we would train on.
    if all(g.get("compute_capability", (0, 0)) >= (8, 0) for g in gpus):
        return ["no", "fp16", "bf16"]
    return ["no", "fp16"]


@functools.lru_cache(maxsize=1)
def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no GPU, or no library: no GPU section, not an error
        return None


def _nvml_gpus() -> list[dict[str, Any]]:
    nvml = _nvml()
    if nvml is None:
        return []
    gpus: list[dict[str, Any]] = []
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        gpu: dict[str, Any] = {"index": i, "name": _str(nvml.nvmlDeviceGetName(h))}
        uuid = _try(nvml.nvmlDeviceGetUUID, h)
        if uuid is not None:
            gpu["uuid"] = _str(uuid)
        mem = _try(nvml.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            gpu["mem_used_mb"] = round(mem.used / 2**20)
            gpu["mem_total_mb"] = round(mem.total / 2**20)
        util = _try(nvml.nvmlDeviceGetUtilizationRates, h)
        gpu["util_pct"] = util.gpu if util is not None else None
        gpu["temp_c"] = _try(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
        power = _try(nvml.nvmlDeviceGetPowerUsage, h)
        gpu["power_w"] = round(power / 1000, 1) if power is not None else None
        cc = _try(nvml.nvmlDeviceGetCudaComputeCapability, h)
        if cc is not None:
            gpu["compute_capability"] = tuple(cc)
        gpus.append(gpu)
    return gpus


def visible_indices(uuids: list[str], mask: str | None) -> list[int] | None:
    """Which of NVML's GPUs (by NVML index, in CUDA's order) CUDA_VISIBLE_DEVICES=`mask` leaves to this process.

    Parsed as the CUDA runtime and torch.cuda.device_count() parse it, so the count matches what torch will see:
    indices ("0,2") or GPU UUIDs or unique UUID prefixes ("GPU-8f2a,GPU-1c"); the list ends at the first entry
    that is not a GPU ("0,-1,2" is "0", "" is none), a repeated entry hides every GPU, an index past the last GPU
    ends the list. None for MIG instances ("MIG-..."), which NVML's GPU list cannot answer."""
    if mask is None:
        return list(range(len(uuids)))
    entries = [e.strip() for e in mask.split(",")]
    if entries[0].startswith("MIG-"):
        return None
    chosen: list[int] = []
    for entry in entries:
        if entries[0].startswith("GPU-"):
            matches = [i for i, u in enumerate(uuids) if entry.startswith("GPU-") and u.startswith(entry)]
            index = matches[0] if len(matches) == 1 else -1  # an ambiguous prefix names no GPU
        else:
            digits = entry[:len(entry) - len(entry.lstrip("0123456789"))]  # "1gpu" reads as 1, like strtoul
            index = int(digits) if digits else -1
            if index >= len(uuids):
                break
        if index < 0:
            break
        if index in chosen:
            return []
        chosen.append(index)
    return chosen


def visible_gpus() -> list[dict[str, Any]]:
    """NVML's GPUs that CUDA_VISIBLE_DEVICES leaves to this process (all of them for MIG instances)."""
    gpus = _nvml_gpus()
    chosen = visible_indices([str(g.get("uuid", "")) for g in gpus], os.environ.get("CUDA_VISIBLE_DEVICES"))
    return gpus if chosen is None else [gpus[i] for i in chosen]


def gpu_count() -> int:
    """CUDA devices this process can use, as torch.cuda.device_count() counts them (CUDA_VISIBLE_DEVICES applied),
    from NVML so that asking costs no torch import; torch itself answers for MIG instances."""
    gpus = _nvml_gpus()
    chosen = visible_indices([str(g.get("uuid", "")) for g in gpus], os.environ.get("CUDA_VISIBLE_DEVICES"))
    if chosen is not None:
        return len(chosen)
    import torch

    return torch.cuda.device_count()


def snapshot(pid: int | None = None) -> dict[str, Any]:
    """One reading of every device; the shape of the `device` event's `snapshot` field."""
    vm = psutil.virtual_memory()
    snap: dict[str, Any] = {
        "gpus": [{k: v for k, v in g.items() if k not in ("compute_capability", "uuid")} for g in visible_gpus()],
        "cpu_pct": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count(),
        "ram_used_mb": round((vm.total - vm.available) / 2**20),
        "ram_total_mb": round(vm.total / 2**20),
        "proc_rss_mb": None,
    }
    if pid is not None:
        try:
            proc = psutil.Process(pid)
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            snap["proc_rss_mb"] = round(rss / 2**20)
        except psutil.Error:
            pass
    return snap


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # a GPU that does not report one field still reports the others
        return None


# Dense peak TFLOP/s by GPU name fragment, for model FLOPs utilisation (MFU). fp16/bf16 tensor-core figures from the
# vendors' data sheets; fp32 ("no") uses TF32 where the GPU has it, since PyTorch matmuls may use it.
_PEAK_TFLOPS: list[tuple[str, dict[str, float]]] = [
    ("H200", {"bf16": 989.0, "fp16": 989.0, "no": 494.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "no": 494.0}),
    ("A100", {"bf16": 312.0, "fp16": 312.0, "no": 156.0}),
    ("L40S", {"bf16": 362.0, "fp16": 362.0, "no": 183.0}),
    ("L4", {"bf16": 121.0, "fp16": 121.0, "no": 60.0}),
    ("A10", {"bf16": 125.0, "fp16": 125.0, "no": 62.5}),
    ("RTX 4090", {"bf16": 165.0, "fp16": 165.0, "no": 82.6}),
    ("RTX 3090", {"bf16": 71.0, "fp16": 71.0, "no": 35.6}),
    ("V100", {"fp16": 125.0, "no": 15.7}),
    ("T4", {"fp16": 65.0, "no": 8.1}),
]


def peak_tflops(name: str, precision: str) -> float | None:
    """The device's dense peak for this precision, or None where it is not known (CPUs included)."""
    for fragment, peaks in _PEAK_TFLOPS:
        if fragment in name:
            return peaks.get(precision)
    return None


def mfu(parameters: int | None, tokens_per_second: float | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation: 6 FLOPs per parameter per trained token, over the device's peak."""
    if not parameters or not tokens_per_second or not peak:
        return None
    return 6 * parameters * tokens_per_second / (peak * 1e12)

"""The machine's facts that decide the fastest path: the CPU's name, feature flags, vector units, clock and cores.

``/proc/cpuinfo`` (Linux) is read in one place, :func:`cpuinfo`, once per process, and shared by both
framework sides and ``alexnet-lab bench``; no framework is imported. Where the file does not exist
(macOS, Windows) every fact falls back to "unknown" (no flags, ``platform.processor()``, no clock).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

__all__ = [
    "cpuinfo", "parse_cpuinfo", "cpu_flags", "cpu_has_fast_bf16", "cpu_vector_units", "cpu_name", "cpu_mhz",
    "cpu_clock_mhz", "cpu_cores", "PRECISION_ENV_VAR", "mixed_precision_from_env",
]

PRECISION_ENV_VAR = "ALEXNET_LAB_MIXED_PRECISION"
_PRECISION_WORDS = {"auto": "auto", "off": False, "false": False, "0": False, "float32": False,
                    "on": True, "true": True, "1": True, "bf16": "bf16", "fp16": "fp16"}

CPUINFO = "/proc/cpuinfo"
CPUFREQ_MAX = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"  # kHz


# ---------------------------------------------------------------------------
# /proc/cpuinfo, read once
# ---------------------------------------------------------------------------
def parse_cpuinfo(text: str) -> dict[str, tuple[str, ...]]:
    """The fields of ``/proc/cpuinfo``'s text: each field's name with its values, one per processor listing it.

    ``"processor\\t: 0\\ncpu MHz\\t: 2445.428\\nprocessor\\t: 1\\ncpu MHz\\t: 2600.000\\n"`` gives
    ``{"processor": ("0", "1"), "cpu MHz": ("2445.428", "2600.000")}``.
    """
    info: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            info.setdefault(key.strip(), []).append(value.strip())
    return {key: tuple(values) for key, values in info.items()}


@functools.lru_cache(maxsize=1)
def cpuinfo() -> dict[str, tuple[str, ...]]:
    """This machine's ``/proc/cpuinfo``, parsed by :func:`parse_cpuinfo`; empty where the file does not exist.

    The only function that reads the file (once: the result is cached). Do not modify the result.
    """
    try:
        return parse_cpuinfo(Path(CPUINFO).read_text())
    except OSError:
        return {}


def _first(info: dict, key: str) -> str | None:
    """The first processor's value of ``key`` (all processors of a machine have the same model and flags)."""
    values = info.get(key)
    return values[0] if values else None


# ---------------------------------------------------------------------------
# The CPU's model and vector units
# ---------------------------------------------------------------------------
def cpu_flags(info: dict | None = None) -> frozenset[str]:
    """The CPU's feature flags (``avx2``, ``avx512f``, ``amx_bf16``, ...); empty where they are unknown.

    ``info``: a parsed ``/proc/cpuinfo`` (:func:`parse_cpuinfo`); default: this machine's.
    """
    info = cpuinfo() if info is None else info
    return frozenset((_first(info, "flags") or "").split())


def cpu_name(info: dict | None = None) -> str:
    """The CPU's model name, e.g. ``"AMD EPYC 7B13"`` (falls back to ``platform.processor()``)."""
    info = cpuinfo() if info is None else info
    return _first(info, "model name") or platform.processor() or platform.machine()


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bfloat16 dot products in hardware (Intel AMX or AVX512-BF16).

    Without them (AVX2-only CPUs, most laptops) PyTorch and TensorFlow emulate bfloat16 and
    mixed precision is several times *slower* than float32. Unknown (no ``/proc/cpuinfo``) counts as no.
    """
    flags = cpu_flags() if flags is None else flags
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def cpu_vector_units(flags: frozenset[str] | None = None) -> str:
    """The CPU's widest vector and matrix units in words: ``"AMX"``, ``"AVX-512 with BF16"``, ``"AVX-512"``,
    ``"AVX2"``, or ``""`` when unknown. They decide which path is fastest (see the table in
    :mod:`alexnet_lab.torch.precision`), so timings and accuracies measured on a CPU are labelled with them."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512 with BF16" if "avx512_bf16" in flags else "AVX-512"
    return "AVX2" if "avx2" in flags else ""


# ---------------------------------------------------------------------------
# Clock and cores: what a peak FLOP/s estimate multiplies
# ---------------------------------------------------------------------------
def cpu_mhz(info: dict | None = None) -> float | None:
    """The highest ``cpu MHz`` of ``/proc/cpuinfo`` (the clock when it was read); None if there is none."""
    info = cpuinfo() if info is None else info
    values = []
    for value in info.get("cpu MHz", ()):
        try:
            values.append(float(value))
        except ValueError:
            pass
    return max(values) if values else None


def cpu_clock_mhz() -> tuple[float | None, str]:
    """The CPU clock in MHz and where it came from: cpufreq's maximum if the OS exposes it, else ``cpu MHz``."""
    try:
        return int(Path(CPUFREQ_MAX).read_text()) / 1000, "cpufreq's maximum clock"
    except (OSError, ValueError):
        pass
    return cpu_mhz(), "'cpu MHz' in /proc/cpuinfo (the clock when read; boost clocks can be higher)"


def cpu_cores(info: dict | None = None) -> int:
    """Physical cores this process may use: its logical CPUs divided by the hardware threads per core.

    Threads per core = ``siblings`` / ``cpu cores`` of ``/proc/cpuinfo`` (``info``; default: this machine's),
    1 where they are unknown.
    """
    info = cpuinfo() if info is None else info
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        per_core = int(_first(info, "siblings")) // int(_first(info, "cpu cores"))
    except (TypeError, ValueError, ZeroDivisionError):
        per_core = 1
    return max(1, logical // max(1, per_core))


def mixed_precision_from_env() -> str | bool:
    """What ``mixed_precision="auto"`` means in this process: ``ALEXNET_LAB_MIXED_PRECISION``, if set.

    ``off`` (or ``float32``) keeps float32 even where bfloat16 is fast, e.g. to reproduce the course's
    expected results, measured in float32, on a CPU with AMX; ``on``, ``bf16`` and ``fp16`` are the
    ``mixed_precision`` argument's values; unset or ``auto``: the machine decides. Both frameworks'
    ``choose_precision`` read it.
    """
    word = os.environ.get(PRECISION_ENV_VAR, "auto").strip().lower() or "auto"
    if word not in _PRECISION_WORDS:
        raise ValueError(f"{PRECISION_ENV_VAR} must be one of {sorted(_PRECISION_WORDS)}. Received: {word!r}. "
                         f"Unset it to let the machine decide.")
    return _PRECISION_WORDS[word]

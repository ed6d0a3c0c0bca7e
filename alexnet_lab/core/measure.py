"""Framework-free measuring: how long a step takes (wall-clock and CPU time), how fast batches come, memory, load.

Both framework sides of ``alexnet-lab bench`` time their steps with the same :func:`time_steps`, so
that a Keras figure and a PyTorch figure are measured alike:

* ``warmup`` untimed calls first (one-time costs: tracing, compilation, memory allocation; their
  total is kept), then ``repetitions`` timed calls, each timed on its own;
* each timed call gets its wall-clock time (``time.perf_counter``) and the process's CPU time
  (``time.process_time``: every thread of the process), so that a figure per step and per image is
  the *median* over the calls, and the CPU time belongs to the very same calls;
* an accelerator runs asynchronously: ``sync`` (e.g. ``torch.cuda.synchronize``) is called after
  each step, inside the timed interval.

Memory is the process's resident memory (Linux ``/proc/self``; ``ru_maxrss`` elsewhere).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

__all__ = ["time_steps", "step_rates", "time_batches", "rss_mib", "peak_rss_bytes", "peak_rss_mib", "load_average"]


# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------
def time_steps(step, *, warmup: int, repetitions: int, sync=lambda: None) -> dict:
    """Run ``step()`` ``warmup`` times untimed, then ``repetitions`` times timed; wall and CPU seconds per step.

    Returns ``{"warmup_s": total seconds of the warm-up, "step_s": [wall seconds of each timed step],
    "cpu_s": [CPU seconds of each timed step]}``.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    wall, cpu = [], []
    for _ in range(repetitions):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"warmup_s": warmup_s, "step_s": wall, "cpu_s": cpu}


def step_rates(prefix: str, timing: dict, batch_size: int) -> dict:
    """A :func:`time_steps` result as record fields: images/s and CPU seconds per image (medians), the steps' times.

    ``prefix`` (``"train"``, ``"infer"``) starts every field's name: ``train_images_per_s``,
    ``train_cpu_s_per_image``, ``train_step_s`` (each timed step, seconds) and ``train_warmup_s``.
    """
    return {f"{prefix}_images_per_s": batch_size / statistics.median(timing["step_s"]),
            f"{prefix}_cpu_s_per_image": statistics.median(timing["cpu_s"]) / batch_size,
            f"{prefix}_step_s": [round(t, 5) for t in timing["step_s"]],
            f"{prefix}_warmup_s": round(timing["warmup_s"], 3)}


def time_batches(make, repetitions: int) -> tuple[float, int]:
    """Images/s of an input pipeline in steady state, and the images counted in one pass.

    ``make()`` returns a fresh iterable of ``(images, labels)`` batches; it is passed through
    ``repetitions`` times. The first batch of each pass (start-up: threads, worker processes, the
    first plan, prefetching) is not counted. The figure is the median over the passes.
    """
    times, counted = [], 0
    for _ in range(repetitions):
        batches = iter(make())
        next(batches)
        start, counted = time.perf_counter(), 0
        for _, labels in batches:
            counted += len(labels)
        times.append(time.perf_counter() - start)
    return counted / statistics.median(times), counted


# ---------------------------------------------------------------------------
# Memory and load
# ---------------------------------------------------------------------------
def rss_mib() -> float | None:
    """This process's resident memory now, in MiB (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_bytes() -> int | None:
    """This process's own peak resident memory so far, in bytes (None where it cannot be read, e.g. Windows).

    On Linux it is ``VmHWM`` from ``/proc/self/status``. ``ru_maxrss`` would not do there: Linux keeps it
    across ``execve``, so a process started from a large one (pytest after many tests, 5 GB) reports the
    parent's peak as its own. Elsewhere it is ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (see :func:`peak_rss_bytes`)."""
    peak = peak_rss_bytes()
    return None if peak is None else peak / 2**20


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none). Above the core count, other
    programs shared the CPU: every time measured meanwhile is longer and noisier."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None

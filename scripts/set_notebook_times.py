"""Write each notebook's measured times into its header, from docs/expected_results.json.

Every notebook's first cell has a paragraph that starts with ``**Time**``. This script rewrites it from
the runs that ``scripts/expected_results.py`` recorded (the median wall time per profile), so that the
header says what was measured, where, and never goes stale by hand::

    .venv/bin/python scripts/set_notebook_times.py
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import expected_results as er  # noqa: E402

from alexnet_lab.core.files import atomic_write_text  # noqa: E402

# What a GPU run of the full profile would take: not measured (no GPU was available), said as such.
FULL = {
    "01": "the full profile (all 50,000 images, 40 epochs per network) was not measured, as no GPU was "
          "available; expect minutes on one",
    "02": "nothing is trained, so the full profile runs the same code (on a GPU machine the timing cell of "
          "section 7 times the GPU)",
    "03": "the full profile (all 50,000 training images, 30 epochs per run) was not measured, as no GPU was "
          "available; preparing the batches on the CPU limits it",
    "04": "the full profile was not measured, as no GPU was available; expect a few minutes on one",
    "05": "the full profile (the larger cifar10 preset, 30 epochs) was not measured, as no GPU was available",
    "06": "the full profile (the ImageNet network on images upsampled to 227×227, 30 epochs) was not measured, "
          "as no GPU was available",
    "07": "the full profile (all of CIFAR-10, 30 epochs per run, 15 runs) was not measured, as no GPU was "
          "available",
    "08": "the full profile (the teacher for 30 epochs) was not measured, as no GPU was "
          "available",
}


# Smoke-profile times where no smoke run of scripts/expected_results.py is recorded: the sum of the cells'
# times under nbval (`pytest --nbval-lax --durations=0 notebooks/`, kernel start-up not included), measured
# on the idle 2-core course machine on 2026-11-23.
SMOKE_NBVAL_S = {"01": 60, "02": 20, "03": 26, "04": 56, "05": 18, "06": 36, "07": 24, "08": 21}


def _minutes(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.0f} minutes"


def paragraph(stem: str, records: list[dict]) -> str:
    walls, where, busy = {}, {}, False
    for profile in ("smoke", "laptop"):
        runs = [r for r in records if r["notebook"] == stem and r["profile"] == profile and er.timed(r)]
        busy = busy or any(r.get("note") for r in runs)  # something else ran beside it: the note says what
        walls[profile] = statistics.median(r["wall_s"] for r in runs) if runs else None
        where[profile] = "; ".join(sorted({r["hardware"] for r in runs}))
    if walls["smoke"] is None:
        walls["smoke"] = SMOKE_NBVAL_S.get(stem[:2])
    if walls["smoke"] is None:
        raise SystemExit(f"{stem}: no recorded smoke run; run scripts/expected_results.py first")
    laptop = ("not measured yet at its current settings" if walls["laptop"] is None
              else _minutes(walls["laptop"]))
    link = "see the README's [expected results](../README.md#expected-results)"
    smoke = f"smoke profile {_minutes(walls['smoke'])}"
    cpus = {w for w in where.values() if w}
    idle = "" if busy else "otherwise idle "
    if len(cpus) > 1:  # the two profiles were timed on different CPUs: name each
        head = (f"measured from top to bottom on the course's {idle}CPUs ({link}): {smoke} on "
                f"{where['smoke']} (it only proves that the code runs), laptop profile {laptop} on {where['laptop']}")
    else:
        hardware = cpus.pop() if cpus else "AMD EPYC, 2 cores"
        head = (f"measured from top to bottom on the course's {idle}CPU ({hardware}; {link}): {smoke} "
                f"(it only proves that the code runs), laptop profile {laptop}")
    return f"**Time**, {head}; {FULL[stem[:2]]}. Reading and exercises: about 45 minutes."


def main() -> int:
    records = er.load_results()
    for path in sorted(er.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        header = nb["cells"][0]
        text = "".join(header["source"])
        start = text.index("**Time**")
        end = text.find("\n\n", start)
        end = len(text) if end < 0 else end
        new = text[:start] + paragraph(path.stem, records) + text[end:]
        if new != text:
            header["source"] = new.splitlines(keepends=True)
            atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            print(f"{path.name}: {paragraph(path.stem, records)[:100]}...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

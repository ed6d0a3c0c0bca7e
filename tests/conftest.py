"""Shared pytest set-up for alexnet-lab.

Tests that need the real data sets read them from the folder named by ``ALEXNET_LAB_DATA``. When
that variable is unset and the shared data folder sits beside the project (``../shared/data``, as on
the course's CI machines), point the variable at it; otherwise those tests skip with a reason.
"""

import os
from pathlib import Path

_SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

if not os.environ.get("ALEXNET_LAB_DATA") and _SHARED_DATA.is_dir():
    os.environ["ALEXNET_LAB_DATA"] = str(_SHARED_DATA)

# Pictures are drawn off-screen in tests: no window, no display needed.
os.environ.setdefault("MPLBACKEND", "Agg")

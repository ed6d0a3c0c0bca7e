"""One benchmark run: training and inference images/s, float32 baseline vs the course's defaults.

This script is ``alexnet-lab bench`` for a clone that is not installed; the command lives in
:mod:`alexnet_lab.cli.bench`, what is measured and how in :mod:`alexnet_lab.core.benchmark`, the
measuring in :mod:`alexnet_lab.torch.benchmark` and :mod:`alexnet_lab.keras.benchmark`. Usage::

    python benchmarks/bench.py --quick --json bench.json     # about two minutes on 2 idle CPU cores
    python benchmarks/bench.py --candidates                  # also every speed-up on its own (slow on CPUs)
    python benchmarks/bench.py --device cuda --candidates    # on a GPU: adds the 224×224 torchvision model

``bench_training.py`` (every precision/memory-format variant) and ``bench_pipelines.py`` (each
input pipeline, alone and feeding the model) look at the same questions in more detail.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from alexnet_lab.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())

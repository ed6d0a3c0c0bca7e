"""The ``alexnet-lab`` command (also ``python -m alexnet_lab``).

Subcommands are added by the modules that implement them; each imports its framework
only when it runs, so ``alexnet-lab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys


def _summary(args: argparse.Namespace) -> int:
    from alexnet_lab.core import architecture as arch

    kwargs = {k: getattr(args, k) for k in ("num_classes", "in_channels", "image_size", "norm", "dropout", "resize_to")
              if getattr(args, k) is not None}
    if args.preset == "lenet5":
        kwargs = {k: v for k, v in kwargs.items() if k in ("num_classes", "in_channels", "image_size")}
    rows = arch.layer_table(args.preset, **kwargs)
    print(f"{args.preset} ({args.framework or 'framework-free'}): per-layer table from alexnet_lab.core.architecture")
    print(arch.format_table(rows))
    if args.framework:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if args.framework == "keras":
            from alexnet_lab.keras import models
        else:
            from alexnet_lab.torch import models
        model = models.lenet5(**kwargs) if args.preset == "lenet5" else models.alexnet(args.preset, **kwargs)
        if args.framework == "keras":
            n = model.count_params()
        else:
            n = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
        total = arch.totals(rows)["params"]
        print(f"\n{args.framework} model {getattr(model, 'name', '')!r}: {n:,} parameters "
              f"({'matches' if n == total else 'DIFFERS FROM'} the table's {total:,})")
        if n != total:
            return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from alexnet_lab.core.architecture import preset_names

    parser = argparse.ArgumentParser(prog="alexnet-lab", description="AlexNet in Keras and PyTorch: course tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("summary", help="print the per-layer table (shapes, parameters, MACs, activations)")
    s.add_argument("--framework", choices=["keras", "torch"], help="also build the model in this framework and check it")
    s.add_argument("--preset", default="classic", choices=preset_names() + ["lenet5"])
    s.add_argument("--num-classes", type=int)
    s.add_argument("--in-channels", type=int)
    s.add_argument("--image-size", type=int)
    s.add_argument("--norm", choices=["none", "lrn", "batch"])
    s.add_argument("--dropout", type=float)
    s.add_argument("--resize-to", type=int)
    s.set_defaults(func=_summary)

    for register in _plugins():
        register(sub)
    return parser


def _plugins():
    """The subcommands defined in their own modules (bench, train, assignment)."""
    from alexnet_lab.cli import assignment, bench, train

    return (bench.register_cli, train.register_cli, assignment.register_cli)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as e:  # bad arguments or data, a missing data set or file
        print(f"alexnet-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

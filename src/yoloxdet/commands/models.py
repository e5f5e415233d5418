"""``yoloxdet models``: the zoo with parameter counts, GFLOPs and default input size."""

from __future__ import annotations

import argparse

from ..config import DEFAULT_HEAD, HEAD_KINDS

HELP = "list the model zoo with parameters, GFLOPs at the default size, and default input size"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-classes", type=int, default=80, help="class count for the counts (default 80)")
    parser.add_argument("--head", default=DEFAULT_HEAD, choices=HEAD_KINDS)


def run(args: argparse.Namespace) -> int:
    from ..models.zoo import MODEL_SPECS, count_gflops, count_parameters, create_model

    print(f"{'model':<18}{'params':>14}{'GFLOPs':>9}{'size':>6}  official weights")
    for name, spec in MODEL_SPECS.items():
        model = create_model(name, args.num_classes, args.head)
        params = count_parameters(model)
        gflops = count_gflops(model, spec.input_size)
        print(f"{name:<18}{params:>14,}{gflops:>9.2f}{spec.input_size:>6}  {spec.weights_file}")
    return 0

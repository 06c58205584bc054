"""``monomial-gmn demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the embedded default",
                       description="Convert a zoo of random networks to parameter graphs and check, for each, "
                                   "that random monomial transformations keep its function and commute with "
                                   "conversion.",
                       epilog="example:\n  monomial-gmn demo --nets 64 --seed 0",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", type=int, default=64, help="number of random networks (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..graph import to_graph
    from ..group import sample_transform
    from ..testing import random_network

    if args.nets < 1:
        raise ValueError("--nets must be at least 1")
    worst, kinds = 0.0, {}
    for i in tqdm(range(args.nets), desc="networks", unit="net"):
        net, x = random_network(args.seed * 100_003 + i)
        graph = to_graph(net)
        g = sample_transform(graph, max_scale=100.0, generator=torch.Generator().manual_seed(args.seed + i))
        moved = g(net)
        same_graph = torch.equal(to_graph(moved).edge_attr, g(graph).edge_attr)
        y = net(x)
        err = float((moved(x) - y).abs().max() / y.abs().max().clamp_min(1e-30))
        worst = max(worst, err)
        for k, v in graph.symmetry_counts().items():
            kinds[k] = kinds.get(k, 0) + v
        if not same_graph:
            raise RuntimeError(f"network {i}: to_graph(g(net)) differs from g(to_graph(net))")
    print(f"{args.nets} networks converted; neurons by symmetry: {kinds}")
    print(f"largest relative output change under random monomial transforms (factors up to 100): {worst:.2e}")
    return 0

"""``monomial-gmn convert``: a saved network → its parameter graph summary (and optionally the graph)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert a saved network to a parameter graph",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a network and print its parameter graph summary (nodes, edges, symmetry counts).",
        epilog="examples:\n"
               "  monomial-gmn convert net.pt --arch mypkg.models:make_net\n"
               "  monomial-gmn convert net.pt --arch torch.nn:Linear --arch-kwargs '{\"in_features\": 2, "
               "\"out_features\": 1}' --out graph.pt\n"
               "  monomial-gmn convert net.pt --arch mypkg.models:make_net --draw graph.png\n"
               "MODEL is a state dict saved with torch.save (read with weights_only=True; pickled modules are\n"
               "never unpickled). --arch names a callable 'module.path:name' that builds the architecture; modules\n"
               "are looked up in the installed packages, then in the current directory.")
    p.add_argument("model", help="state dict file (.pt/.pth, or .safetensors)")
    p.add_argument("--arch", required=True, help="import path 'package.module:callable' building the architecture")
    p.add_argument("--arch-kwargs", default="{}", help="JSON keyword arguments for --arch (default: {})")
    p.add_argument("--out", help="write the graph (tensors only, safetensors-compatible .pt) here")
    p.add_argument("--draw", metavar="PNG", help="draw the graph as a layered PNG (neurons coloured by symmetry, "
                                                 "edges shaded by kernel norm); up to 400 neurons / 20,000 edges")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..graph import to_graph
    from ._io import load_network, save_graph

    net = load_network(args.model, args.arch, args.arch_kwargs)
    graph = to_graph(net)
    print(json.dumps(graph.summary(), indent=2))
    if args.out:
        save_graph(graph, args.out)
        print(f"wrote {args.out}")
    if args.draw:
        from ..graph import graph_spec
        from ..viz import draw_graph

        names = [f"{rec.path or '(root)'}: {type(net.get_submodule(rec.path)).__name__}"
                 + (f" {'×'.join(map(str, rec.kernel))}" if rec.kernel else "") for rec in graph_spec(net).layers]
        draw_graph(graph, args.draw, layer_names=names)
        print(f"wrote {args.draw}")
    return 0

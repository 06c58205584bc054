"""ParameterGraph <-> networkx, for inspection, drawing and structural checks.

:func:`graph_to_networkx` goes through PyG's :func:`torch_geometric.utils.to_networkx` and returns a
``networkx.DiGraph`` whose nodes are the integers ``0..N-1`` (the graph's node ids) and whose edges point from
input neuron j to output neuron i, as in :class:`~monomial_gmn.graph.ParameterGraph`:

===================  ===========================================================================================
attribute            value
===================  ===========================================================================================
node ``x``           list of F floats: the node features (``x[i]``; the bias is ``x[i][0]``)
node ``bias``        float, ``x[i, 0]``
node ``layer``,      ints, as in the graph (``role``: 0 input, 1 hidden, 2 output; ``sym``: :class:`Symmetry`)
``role``, ``sym``,
``block``, ``pos``
node ``role_label``  ``'input'`` / ``'hidden'`` / ``'output'``
node ``sym_label``   ``'fixed'`` / ``'none'`` / ``'positive_scale'`` / ``'sign'`` / ``'scale'``
edge ``kernel``      list of S*S floats: the (j → i) kernel on the centred S×S canvas (``edge_attr[e]``)
edge ``magnitude``   float, the kernel's Euclidean norm ‖W[i, j]‖
edge ``edge_layer``  int, the parametric layer owning the edge
===================  ===========================================================================================

Any other per-node / per-edge / per-graph tensor the graph carries (e.g. a label ``y``) is kept under its own
name. ``G.graph["fields"]`` records every tensor field's level, dtype and shape, so
:func:`graph_from_networkx` rebuilds the graph *exactly* (same values, dtypes and canonical edge order).
Float32/float16 values survive the trip through Python floats bit for bit.

A networkx graph built by hand (no ``fields`` record) is read from the attributes above: nodes need
``layer``, ``role``, ``sym`` and ``x`` or ``bias`` (``block``/``pos`` default to −1), edges need ``kernel``
(or a scalar ``weight``, read as a 1×1 kernel); ``edge_layer`` defaults to ``layer[i] − 1``. Its nodes may
have any hashable ids; they are numbered layer by layer, in insertion order within a layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._parameter_graph import ParameterGraph, kernel_side
from ._symmetry import Role, Symmetry

__all__ = ["graph_to_networkx", "graph_from_networkx"]

_NODE_INT = ("layer", "role", "sym", "block", "pos")
_RENAMED = {"edge_attr": "kernel"}          # tensor field -> networkx attribute name
_DERIVED_NODE = ("bias", "role_label", "sym_label")
_DERIVED_EDGE = ("magnitude",)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _parse_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"networkx graph: field record names an unknown dtype {name!r}")
    return dtype


def graph_to_networkx(graph: ParameterGraph) -> Any:
    """The graph as a ``networkx.DiGraph`` (attributes in the module docstring).

    Args:
        graph: a :class:`ParameterGraph` (or any PyG ``Data`` with its fields, e.g. one from a zoo).

    Returns:
        ``networkx.DiGraph`` with N nodes and E edges (one per (j → i) channel pair).
    """
    from torch_geometric.data import Data
    from torch_geometric.utils import to_networkx

    for key in ("x", "edge_index", "edge_attr", *_NODE_INT, "edge_layer"):
        if getattr(graph, key, None) is None:
            raise ValueError(f"cannot export to networkx: the graph has no field '{key}'")
    n, e = int(graph.num_nodes), int(graph.edge_index.shape[1])
    fields: dict[str, dict[str, Any]] = {}
    node_keys, edge_keys, graph_keys = [], [], []
    proxy = Data()
    for key, value in graph.items():
        if not isinstance(value, Tensor) or key == "edge_index":
            continue
        name = _RENAMED.get(key, key)
        if name in _DERIVED_NODE or name in _DERIVED_EDGE or name in ("fields",):
            raise ValueError(f"cannot export to networkx: field '{key}' clashes with a derived attribute")
        if key in ("x", *_NODE_INT):
            level, keys = "node", node_keys
        elif key in ("edge_attr", "edge_layer"):
            level, keys = "edge", edge_keys
        elif value.dim() >= 1 and graph.is_node_attr(key) and value.shape[0] == n:
            level, keys = "node", node_keys
        elif value.dim() >= 1 and graph.is_edge_attr(key) and value.shape[0] == e:
            level, keys = "edge", edge_keys
        else:
            level, keys = "graph", graph_keys
        fields[name] = {"key": key, "level": level, "dtype": _dtype_name(value.dtype),
                        "shape": list(value.shape)}
        keys.append(name)
        # per-node / per-edge values go in as Python lists (one vectorised .tolist() each), so PyG's
        # to_networkx indexes lists instead of slicing a tensor per node and per edge
        proxy[name] = value.detach().cpu().tolist() if level != "graph" else value.detach().cpu()
    proxy.edge_index = graph.edge_index.detach().cpu()
    proxy.num_nodes = n
    proxy.bias = graph.x[:, 0].detach().cpu().tolist() if graph.x.shape[1] else [0.0] * n
    proxy.magnitude = graph.edge_attr.detach().cpu().double().norm(dim=1).tolist()
    role_names = {int(r): r.name.lower() for r in Role}
    sym_names = {int(s): s.label for s in Symmetry}
    proxy.role_label = [role_names.get(r, str(r)) for r in graph.role.tolist()]
    proxy.sym_label = [sym_names.get(v, str(v)) for v in graph.sym.tolist()]
    G = to_networkx(proxy, node_attrs=[*node_keys, "bias", "role_label", "sym_label"],
                    edge_attrs=[*edge_keys, "magnitude"], graph_attrs=graph_keys)
    G.graph["fields"] = fields
    G.graph["num_nodes"] = n
    G.graph["explicit_num_nodes"] = "num_nodes" in graph.keys()
    G.graph["kernel_side"] = kernel_side(graph.edge_attr)
    return G


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _node_value(attrs: dict, key: str, node: Any) -> Any:
    try:
        return attrs[key]
    except KeyError:
        raise ValueError(f"networkx graph: node {node!r} has no attribute '{key}'") from None


def graph_from_networkx(G: Any, cls: type[ParameterGraph] = ParameterGraph) -> ParameterGraph:
    """Rebuild a :class:`ParameterGraph` from a networkx graph made by :func:`graph_to_networkx` (exactly) or
    by hand (from the attributes in the module docstring). Edges are put in canonical (i, j) order.

    Raises:
        ValueError: naming the node/edge and the attribute that is missing or malformed.
    """
    import networkx as nx

    if not isinstance(G, (nx.DiGraph, nx.MultiDiGraph)) or G.is_multigraph():
        raise ValueError(f"expected a networkx.DiGraph (edges j -> i), got {type(G).__name__}")
    fields: dict[str, dict[str, Any]] | None = G.graph.get("fields")
    if fields is not None:
        nodes = list(G.nodes)
        n = len(nodes)
        if set(nodes) != set(range(n)) or not all(isinstance(v, int) for v in nodes):
            raise ValueError("networkx graph: nodes must be 0..N-1 as written by graph_to_networkx")
        nodes = list(range(n))
    else:
        # hand-built: layer by layer, in insertion order within a layer (the ParameterGraph node layout)
        nodes = list(G.nodes)
        layers = [_node_value(G.nodes[v], "layer", v) for v in nodes]
        nodes = [v for _, _, v in sorted(zip(layers, range(len(nodes)), nodes), key=lambda t: (t[0], t[1]))]
        n = len(nodes)
    index = {node: i for i, node in enumerate(nodes)}
    node_data = [G.nodes[node] for node in nodes]
    edges = list(G.edges(data=True))
    src = torch.tensor([index[u] for u, _, _ in edges], dtype=torch.long)
    dst = torch.tensor([index[v] for _, v, _ in edges], dtype=torch.long)
    order = torch.argsort(dst * max(n, 1) + src, stable=True)
    edge_data = [edges[k][2] for k in order.tolist()]
    out: dict[str, Tensor] = {"edge_index": torch.stack([src[order], dst[order]])}

    if fields is not None:
        for name, rec in fields.items():
            dtype, shape, level = _parse_dtype(rec["dtype"]), tuple(rec["shape"]), rec["level"]
            if level == "node":
                rows = [_node_value(d, name, nodes[i]) for i, d in enumerate(node_data)]
            elif level == "edge":
                rows = []
                for k, d in zip(order.tolist(), edge_data):
                    if name not in d:
                        raise ValueError(f"networkx graph: edge {edges[k][0]!r} -> {edges[k][1]!r} has no "
                                         f"attribute '{name}'")
                    rows.append(d[name])
            else:
                if name not in G.graph:
                    raise ValueError(f"networkx graph: graph attribute '{name}' is missing")
                rows = G.graph[name]
            value = torch.tensor(rows, dtype=dtype)
            if value.numel() != _numel(shape):
                raise ValueError(f"networkx graph: field '{name}' holds {value.numel()} values; its record "
                                 f"says shape {list(shape)}")
            out[rec["key"]] = value.reshape(shape)
        graph = cls(**out)
        if G.graph.get("explicit_num_nodes"):
            graph.num_nodes = n
        return graph.validate()

    # hand-built graph: read the documented attributes
    for key in _NODE_INT:
        if key in ("block", "pos"):
            vals = [d.get(key, -1) for d in node_data]
        else:
            vals = [_node_value(d, key, nodes[i]) for i, d in enumerate(node_data)]
        out[key] = torch.tensor(vals, dtype=torch.long)
    if all("x" in d for d in node_data):
        out["x"] = torch.tensor([d["x"] for d in node_data], dtype=torch.float32).reshape(n, -1)
    else:
        out["x"] = torch.tensor([[float(_node_value(d, "bias", nodes[i]))] for i, d in enumerate(node_data)],
                                dtype=torch.float32).reshape(n, 1)
    kernels = []
    for k, d in zip(order.tolist(), edge_data):
        if "kernel" in d:
            kernels.append(list(d["kernel"]))
        elif "weight" in d:
            kernels.append([float(d["weight"])])
        else:
            raise ValueError(f"networkx graph: edge {edges[k][0]!r} -> {edges[k][1]!r} has neither 'kernel' "
                             "nor 'weight'")
    sizes = {len(kern) for kern in kernels}
    if len(sizes) > 1:
        raise ValueError(f"networkx graph: edge kernels have different sizes {sorted(sizes)}; expected S*S each")
    width = sizes.pop() if sizes else 1
    out["edge_attr"] = torch.tensor(kernels, dtype=torch.float32).reshape(len(kernels), width)
    if all("edge_layer" in d for d in edge_data):
        out["edge_layer"] = torch.tensor([int(d["edge_layer"]) for d in edge_data], dtype=torch.long)
    else:
        out["edge_layer"] = out["layer"][out["edge_index"][1]] - 1
    return cls(**out).validate()

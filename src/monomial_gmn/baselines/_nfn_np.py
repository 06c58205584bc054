"""NFN-NP: the neuron-permutation-equivariant neural functional of Zhou et al. 2023 ("Permutation Equivariant
Neural Functionals"), re-implemented from the paper's equations on ParameterGraph batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..graph import Role, Symmetry, kernel_side, pad_canvas
from ..nn import EquivariantHead, InvariantHead, fixed_index
from ._gmn import _edit_in_normalised_space, normalize_layers, sinusoidal_encoding
from ._stats import graph_index

__all__ = ["NFNNP", "NPLayer", "DenseLayout", "dense_layout"]


@dataclass
class DenseLayout:
    """Where every edge and node of a fixed-architecture batch sits in the per-layer dense tensors.

    Attributes:
        num_graphs: B; nodes_per_graph: n; sizes: [n_0, …, n_L] neurons per layer (layer 0: inputs).
        edge_graph, row, col: [E] graph id, output-neuron index and input-neuron index of each edge in its
            layer's weight matrix W_k [n_{k+1}, n_k]; masks: per parametric layer k, the [E] bool edge mask.
    """

    num_graphs: int
    nodes_per_graph: int
    sizes: list[int]
    edge_graph: Tensor
    row: Tensor
    col: Tensor
    masks: list[Tensor]

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1


def dense_layout(data: Data) -> DenseLayout:
    """Validate that ``data`` holds B graphs of one chain architecture and index them densely.

    Raises ``ValueError`` (naming what differs) on mixed architectures, on nets whose parametric layer k does
    not map exactly the layer-k neurons to the layer-(k+1) neurons (residual or skip connections), or on
    missing edges.
    """
    node_graph, b = graph_index(data)
    n_total = data.num_nodes
    if n_total % b != 0:
        raise ValueError(f"NFN-NP needs one fixed architecture per batch; the batch's {b} networks have "
                         f"different numbers of neurons ({n_total} in all)")
    n = n_total // b
    ptr = getattr(data, "ptr", None)
    if ptr is not None and b > 1 and bool(((ptr[1:] - ptr[:-1]) != n).any()):
        raise ValueError("NFN-NP needs one fixed architecture per batch; the batch mixes networks with "
                         "different numbers of neurons")
    layer = data.layer.view(b, n)
    role = data.role.view(b, n)
    if bool((layer != layer[:1]).any()) or bool((role != role[:1]).any()):
        raise ValueError("NFN-NP needs one fixed architecture per batch; the batch mixes networks whose "
                         "neurons are laid out in different layers (use GMN or MonomialGMN for mixed zoos)")
    lay0 = layer[0]
    if n > 1 and bool((lay0[1:] < lay0[:-1]).any()):
        raise ValueError("NFN-NP: the graph's neurons are not laid out layer by layer")
    depth = int(lay0.max()) if n else 0
    if depth < 1:
        raise ValueError("NFN-NP: the network has no parametric layer")
    sizes_t = torch.bincount(lay0, minlength=depth + 1)
    starts = torch.cumsum(sizes_t, 0) - sizes_t
    src, dst = data.edge_index
    el = data.edge_layer
    if el.numel() and int(el.max()) >= depth:
        raise ValueError("NFN-NP: an edge belongs to a parametric layer that has no output neurons")
    if not bool(((data.layer[src] == el) & (data.layer[dst] == el + 1)).all()):
        raise ValueError("NFN-NP supports chain networks only (parametric layer k maps the layer-k neurons to "
                         "the layer-(k+1) neurons); this batch has skip/residual or shared-neuron edges")
    edge_graph = node_graph[dst]
    ptr_n = torch.arange(b, device=src.device) * n
    local_src, local_dst = src - ptr_n[edge_graph], dst - ptr_n[edge_graph]
    row = local_dst - starts[el + 1]
    col = local_src - starts[el]
    counts = torch.bincount(edge_graph * depth + el, minlength=b * depth).view(b, depth)
    need = (sizes_t[1:] * sizes_t[:-1]).unsqueeze(0)
    if bool((counts != need).any()):
        raise ValueError("NFN-NP needs dense layers: every (output, input) neuron pair of each layer must have "
                         "exactly one edge, and all networks of the batch the same layers")
    masks = [el == k for k in range(depth)]
    return DenseLayout(b, n, [int(s) for s in sizes_t.tolist()], edge_graph, row, col, masks)


def _to_dense(layout: DenseLayout, node_feat: Tensor, edge_feat: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Per-layer weights W_k [B, n_{k+1}, n_k, F] and biases b_k [B, n_{k+1}, F] from flat features."""
    b, n, sizes = layout.num_graphs, layout.nodes_per_graph, layout.sizes
    ws = []
    for k, mask in enumerate(layout.masks):
        w = edge_feat.new_zeros(b, sizes[k + 1], sizes[k], edge_feat.shape[-1])
        w[layout.edge_graph[mask], layout.row[mask], layout.col[mask]] = edge_feat[mask]
        ws.append(w)
    nodes = node_feat.view(b, n, -1)
    bs = list(torch.split(nodes, sizes, dim=1))[1:]
    return ws, bs


def _to_flat(layout: DenseLayout, ws: list[Tensor], bs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`_to_dense`; input neurons get the column means of W_0 as node features."""
    b, n = layout.num_graphs, layout.nodes_per_graph
    c = ws[0].shape[-1]
    h = torch.cat([ws[0].mean(1), *bs], dim=1).reshape(b * n, c)
    e = ws[0].new_empty(layout.edge_graph.numel(), c)
    for k, mask in enumerate(layout.masks):
        e[mask] = ws[k][layout.edge_graph[mask], layout.row[mask], layout.col[mask]]
    return h, e


class NPLayer(nn.Module):
    r"""One NP-equivariant linear layer (Zhou et al. 2023, neuron-permutation group: every layer's neurons —
    inputs and outputs included — permuted independently).

    For parametric layer i with weights :math:`W^{(i)}\in\mathbb{R}^{n_i\times n_{i-1}\times c}` and biases
    :math:`b^{(i)}\in\mathbb{R}^{n_i\times c}` (⋆ = mean over that index; every term has its own c → c' map,
    per layer i):

    .. math::
        W'^{(i)}_{jk} = A_i W^{(i)}_{jk}
          + R_i\big[W^{(i)}_{j\star},\ W^{(i+1)}_{\star j},\ b^{(i)}_j\big]
          + C_i\big[W^{(i)}_{\star k},\ W^{(i-1)}_{k\star},\ b^{(i-1)}_k\big]
          + G_i\, g

        b'^{(i)}_j = B_i\big[b^{(i)}_j,\ W^{(i)}_{j\star},\ W^{(i+1)}_{\star j}\big] + H_i\, g,\qquad
        g = \big[W^{(s)}_{\star\star},\ b^{(s)}_\star\big]_{s=1..L}

    These are exactly the terms NP parameter sharing allows: an output indexed by (j, k) may read inputs
    indexed by j (rows of W^(i), columns of W^(i+1), b^(i)), by k (columns of W^(i), rows of W^(i-1),
    b^(i-1)), by both (W^(i) itself), and the full means of everything. Missing neighbours (i = 1, i = L)
    read zeros.

    Shapes:
        ws: L tensors [B, n_i, n_{i-1}, c_in], bs: L tensors [B, n_i, c_in] → same shapes with c_out.
    """

    def __init__(self, depth: int, in_channels: int, out_channels: int):
        super().__init__()
        c, o, L = in_channels, out_channels, depth
        self.depth, self.in_channels, self.out_channels = L, c, o
        self.self_w = nn.ModuleList([nn.Linear(c, o, bias=False) for _ in range(L)])
        self.row_w = nn.ModuleList([nn.Linear(3 * c, o, bias=False) for _ in range(L)])
        self.col_w = nn.ModuleList([nn.Linear(3 * c, o, bias=False) for _ in range(L)])
        self.glob_w = nn.ModuleList([nn.Linear(2 * L * c, o) for _ in range(L)])
        self.node_b = nn.ModuleList([nn.Linear(3 * c, o, bias=False) for _ in range(L)])
        self.glob_b = nn.ModuleList([nn.Linear(2 * L * c, o) for _ in range(L)])

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, ws: list[Tensor], bs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        L = self.depth
        if len(ws) != L or len(bs) != L:
            raise ValueError(f"NPLayer was built for {L} layers, got {len(ws)} weights and {len(bs)} biases")
        row_mean = [w.mean(2) for w in ws]            # [B, n_i, c]   (indexed by layer-i neurons)
        col_mean = [w.mean(1) for w in ws]            # [B, n_{i-1}, c] (indexed by layer-(i-1) neurons)
        g = torch.cat([w.mean((1, 2)) for w in ws] + [b.mean(1) for b in bs], -1)   # [B, 2Lc]
        out_w, out_b = [], []
        for i in range(L):
            w, b = ws[i], bs[i]
            nxt = col_mean[i + 1] if i + 1 < L else torch.zeros_like(row_mean[i])
            prv = row_mean[i - 1] if i > 0 else torch.zeros_like(col_mean[i])
            prv_b = bs[i - 1] if i > 0 else torch.zeros_like(col_mean[i])
            by_j = torch.cat([row_mean[i], nxt, b], -1)              # [B, n_i, 3c]
            by_k = torch.cat([col_mean[i], prv, prv_b], -1)          # [B, n_{i-1}, 3c]
            gw = self.glob_w[i](g)[:, None, None, :]
            out_w.append(self.self_w[i](w) + self.row_w[i](by_j)[:, :, None, :]
                         + self.col_w[i](by_k)[:, None, :, :] + gw)
            out_b.append(self.node_b[i](by_j) + self.glob_b[i](g)[:, None, :])
        return out_w, out_b

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(depth={self.depth}, {self.in_channels}, {self.out_channels})"


class NFNNP(nn.Module):
    r"""NFN-NP baseline (Zhou et al. 2023): a stack of :class:`NPLayer` with ReLU, then the shared heads.

    The batch must hold networks of one fixed chain architecture (MLPs, CNNs; conv kernels are vectors of
    channels): mixed batches raise ``ValueError``. Inputs per weight entry are the per-layer-normalised
    kernel (see :func:`~monomial_gmn.baselines.normalize_layers`) and the layer's log-RMS; per bias entry
    the normalised bias and log-RMS. With ``io_encoding`` (default), sinusoidal encodings of the index of
    the input neuron (first layer's columns) and of the output neuron (last layer's rows and biases) are
    appended, which breaks the NP group's extra permutations of input and output neurons down to the true
    hidden-neuron group, as the paper suggests for such tasks. Final features are read back onto the
    graph — weights on edges, biases on nodes, the column means of the first layer on input nodes — and go
    to :class:`~monomial_gmn.nn.InvariantHead` / :class:`~monomial_gmn.nn.EquivariantHead` with
    ``sym = NONE``. Invariant/equivariant to permutations of hidden neurons only, not to scales or signs.

    Args:
        out_dim: prediction width (invariant readout).
        readout: ``"invariant"`` or ``"equivariant"``.
        hidden_dim: channels c (default: 128).
        num_layers: NP layers (default: 4).
        depth: L, parametric layers of the zoo's networks (default: None, inferred from the first batch).
        kernel_side: largest kernel canvas S read (default: 7); smaller ones are zero-padded.
        io_encoding: width of each input/output index encoding, 0 to disable (default: 8).
        norm: ``"layer"`` (default) or ``"none"``, as in :class:`GMN`.
        dropout: dropout in the head (default: 0).

    Every NP layer has its own maps per parametric layer, so the NP layers exist only once the zoo's depth L
    is known: give ``depth`` (4 for the Small CNN Zoo, 3 for 2→32→32→1 SIRENs), or leave it ``None`` and
    call :meth:`fit_normalizer` with the training batches (the trainer does, before building its optimiser)
    (training a model whose layers do not exist yet raises ``RuntimeError``; an inference-only forward
    builds them). A batch of another depth raises ``ValueError``.

    Shapes:
        input: Batch of B same-architecture graphs → [B, out_dim] or an edited graph.
    """

    def __init__(self, out_dim: int = 1, readout: str = "invariant", hidden_dim: int = 128, num_layers: int = 4,
                 depth: int | None = None, kernel_side: int = 7, io_encoding: int = 8, norm: str = "layer",
                 dropout: float = 0.0):
        super().__init__()
        if readout not in ("invariant", "equivariant"):
            raise ValueError(f"NFNNP: readout must be 'invariant' or 'equivariant', not {readout!r}")
        if hidden_dim < 1 or num_layers < 1 or out_dim < 1 or (depth is not None and depth < 1):
            raise ValueError(f"NFNNP: invalid sizes out_dim={out_dim}, hidden_dim={hidden_dim}, "
                             f"num_layers={num_layers}, depth={depth}")
        if kernel_side < 1 or kernel_side % 2 == 0:
            raise ValueError(f"NFNNP: kernel_side must be odd and >= 1, got {kernel_side}")
        if norm not in ("layer", "none"):
            raise ValueError(f"NFNNP: norm must be 'layer' or 'none', not {norm!r}")
        self.out_dim, self.readout, self.hidden_dim, self.num_layers = out_dim, readout, hidden_dim, num_layers
        self.depth, self.kernel_side, self.io_encoding, self.norm = depth, kernel_side, io_encoding, norm
        c_w = kernel_side * kernel_side + 2 + 2 * io_encoding
        c_b = 1 + 2 + 2 * io_encoding
        # Bias entries get the same width as weight entries (zero-padded) so one NPLayer reads both.
        self.in_channels = max(c_w, c_b)
        self.layers = nn.ModuleList()
        self.act = nn.ReLU()
        if readout == "invariant":
            self.head: nn.Module = InvariantHead(hidden_dim, out_dim, hidden_dim=hidden_dim, dropout=dropout)
        else:
            self.head = EquivariantHead(hidden_dim, edge_dim=hidden_dim)
        if depth is not None:
            self._build(depth)

    def _build(self, depth: int, like: Tensor | None = None) -> None:
        dims = [self.in_channels] + [self.hidden_dim] * self.num_layers
        self.depth = depth
        self.layers = nn.ModuleList([NPLayer(depth, dims[i], dims[i + 1]) for i in range(self.num_layers)])
        ref = like if like is not None else next(self.head.parameters())
        self.layers.to(device=ref.device, dtype=ref.dtype)

    @torch.no_grad()
    def fit_normalizer(self, batches: Data | Iterable[Data]) -> "NFNNP":
        """Build the NP layers for the depth of the first batch if ``depth`` was not given (and check the
        architecture); NFN-NP has no dataset-level constants, normalisation is per network.

        ``batches``: a ParameterGraph, a Batch, or an iterable of them (a list, a GraphLoader)."""
        for batch in ([batches] if isinstance(batches, Data) else batches):
            layout = dense_layout(batch)
            if self.depth is None:
                self._build(layout.depth)
            elif layout.depth != self.depth:
                raise ValueError(f"NFNNP was built for networks with {self.depth} parametric layers; the "
                                 f"training batches have {layout.depth}")
            break
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # A model built with depth=None takes its depth from the weights it loads (run directories).
        if self.depth is None:
            key = prefix + "layers.0.self_w."
            ids = {k[len(key):].split(".")[0] for k in state_dict if k.startswith(key)}
            if ids:
                self._build(len(ids))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()
        self.head.reset_parameters()

    def _inputs(self, data: Data, layout: DenseLayout) -> tuple[Tensor, Tensor]:
        """Flat node [N, c_in] and edge [E, c_in] input features (see the class docstring)."""
        s = kernel_side(data.edge_attr)
        if s > self.kernel_side:
            raise ValueError(f"NFNNP reads kernels up to {self.kernel_side}×{self.kernel_side}; this batch has "
                             f"{s}×{s} kernels: build the model with kernel_side={s}")
        x, ea, node_side, edge_side = normalize_layers(data, self.norm)
        ea = pad_canvas(ea, self.kernel_side)
        dt = next(self.head.parameters()).dtype
        parts_e = [ea, edge_side]
        parts_n = [x[:, :1], node_side]
        if self.io_encoding:
            q = self.io_encoding
            el, last = data.edge_layer, layout.depth - 1
            enc_in = sinusoidal_encoding(layout.col, q).to(ea.dtype) * (el == 0).unsqueeze(-1)
            enc_out = sinusoidal_encoding(layout.row, q).to(ea.dtype) * (el == last).unsqueeze(-1)
            parts_e += [enc_in, enc_out]
            idx = fixed_index(data, data.num_nodes, x.device)
            is_out = (data.role == Role.OUTPUT).unsqueeze(-1)
            parts_n += [torch.zeros(data.num_nodes, q, dtype=x.dtype, device=x.device),
                        sinusoidal_encoding(idx, q).to(x.dtype) * is_out]
        e_in, n_in = torch.cat(parts_e, -1), torch.cat(parts_n, -1)
        n_in = torch.nn.functional.pad(n_in, (0, self.in_channels - n_in.shape[1]))
        e_in = torch.nn.functional.pad(e_in, (0, self.in_channels - e_in.shape[1]))
        return n_in.to(dt), e_in.to(dt)

    def encode(self, data: Data) -> tuple[Tensor, Tensor]:
        """Backbone features (h [N, c], e [E, c]) before the head."""
        layout = dense_layout(data)
        if self.depth is None:
            if self.training and torch.is_grad_enabled():
                raise RuntimeError("NFNNP has no NP layers yet (depth=None): pass depth=... or call "
                                   "fit_normalizer(training batches) before creating the optimiser")
            self._build(layout.depth)
        if layout.depth != self.depth:
            raise ValueError(f"NFNNP was built for networks with {self.depth} parametric layers; this batch has "
                             f"{layout.depth} (pass depth={layout.depth})")
        n_in, e_in = self._inputs(data, layout)
        ws, bs = _to_dense(layout, n_in, e_in)
        for layer in self.layers:
            ws, bs = layer(ws, bs)
            ws, bs = [self.act(w) for w in ws], [self.act(b) for b in bs]
        return _to_flat(layout, ws, bs)

    def forward(self, data: Data):
        h, e = self.encode(data)
        sym = torch.full_like(data.sym, int(Symmetry.NONE))
        if self.readout == "invariant":
            return self.head(h, e, data, sym=sym)
        return _edit_in_normalised_space(self.head, h, e, data, sym, self.norm)

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, hidden_dim={self.hidden_dim}, num_layers={self.num_layers}, "
                f"readout={self.readout}, io_encoding={self.io_encoding}, norm={self.norm}")

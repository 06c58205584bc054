"""A differentiable, vectorised renderer for a batch of same-architecture MLP INRs (SIRENs) given as graphs.

The weights are read straight from the graph tensors (canonical edge order, see
:class:`monomial_gmn.ParameterGraph`): one gather per layer turns ``edge_attr`` [B, E, K] into weight
matrices [B, n_out, n_in], and the network runs as batched matmuls over a shared coordinate grid. No Python
loop over networks or edges; gradients flow to ``x`` and ``edge_attr`` (used by the inr-editing task).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..graph import graph_spec, kernel_side

__all__ = ["INRRenderer", "coordinate_grid"]


def coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """[H*W, 2] pixel-centre coordinates in [-1, 1], row-major (row index first, then column).

    This is the grid the digits-siren zoo fits its INRs on; a network's rendering of pixel (r, c) is row
    ``r * W + c`` of its output.
    """
    rows = torch.linspace(-1.0, 1.0, height, dtype=dtype)
    cols = torch.linspace(-1.0, 1.0, width, dtype=dtype)
    rr, cc = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([rr.reshape(-1), cc.reshape(-1)], dim=1)


class INRRenderer(nn.Module):
    """Render B same-architecture MLPs (Linear layers with parameter-free ops between them) on a coordinate grid.

    Args:
        template: one network of the architecture (e.g. ``zoo.module(0)``); only its structure is used: the
            sequence of ``nn.Linear`` layers and the parameter-free modules (e.g. :class:`Sine`) between them.

    Shapes:
        forward(x [B, N, 1] or [B*N, 1], edge_attr [B, E, K] or [B*E, K], coords [P, d_in]) → [B, P, d_out].
    """

    def __init__(self, template: nn.Module):
        super().__init__()
        spec = graph_spec(template)
        mods = [m for m in template.modules() if not list(m.children())]
        self._steps: list[tuple[str, object]] = []
        li = 0
        for m in mods:
            if isinstance(m, nn.Linear):
                self._steps.append(("linear", li))
                li += 1
            elif any(True for _ in m.parameters(recurse=False)):
                raise ValueError(f"INRRenderer supports Linear layers and parameter-free ops; "
                                 f"{type(m).__name__} has parameters")
            else:
                self._steps.append(("op", m))
        if li != len(spec.layers):
            raise ValueError("INRRenderer: the template's Linear layers do not match its graph layers")
        self.num_nodes, self.num_edges, self.side = spec.num_nodes, spec.num_edges, spec.side
        self._gathers: list[Tensor] = []
        self._bias_nodes: list[Tensor | None] = []
        self._shapes: list[tuple[int, int]] = []
        for k, rec in enumerate(spec.layers):
            edges, lin = spec.layer_edges(k)
            gather = torch.empty_like(edges)
            gather[lin] = edges  # row-major (out, in) position → canonical edge id
            self._gathers.append(gather)
            self._bias_nodes.append(rec.out_nodes.clone() if rec.bias is not None else None)
            self._shapes.append((rec.n_out, rec.n_in))

    def weights(self, x: Tensor, edge_attr: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """Per layer (W [B, n_out, n_in], b [B, n_out] or None) read from stacked graph tensors."""
        n, e = self.num_nodes, self.num_edges
        x = x.reshape(-1, n, x.shape[-1])
        edge_attr = edge_attr.reshape(-1, e, edge_attr.shape[-1])
        centre = (kernel_side(edge_attr) ** 2) // 2
        w_all = edge_attr[..., centre]
        out = []
        for gather, bias_nodes, (n_out, n_in) in zip(self._gathers, self._bias_nodes, self._shapes):
            w = w_all[:, gather.to(w_all.device)].reshape(-1, n_out, n_in)
            b = x[:, bias_nodes.to(x.device), 0] if bias_nodes is not None else None
            out.append((w, b))
        return out

    def forward(self, x: Tensor, edge_attr: Tensor, coords: Tensor) -> Tensor:
        layers = self.weights(x, edge_attr)
        h = coords.to(edge_attr.dtype).unsqueeze(0).expand(layers[0][0].shape[0], -1, -1)  # [B, P, d_in]
        for kind, item in self._steps:
            if kind == "linear":
                w, b = layers[item]
                h = torch.bmm(h, w.transpose(1, 2))
                if b is not None:
                    h = h + b.unsqueeze(1)
            else:
                h = item(h)
        return h

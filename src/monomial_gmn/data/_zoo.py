"""The Zoo: many networks (possibly of several architectures) with per-network metadata columns."""

from __future__ import annotations

import math
import numbers
from collections import Counter
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..graph import Architecture, ParameterGraph, batch_stacked, pad_canvas

__all__ = ["Zoo"]

Index = Sequence[int] | np.ndarray | Tensor | slice | None


class Zoo:
    """A collection of networks stored as flat parameter arrays per architecture, plus metadata columns.

    Networks ``i = 0 .. len(zoo)-1`` each belong to one architecture (``columns['arch'][i]``) and sit at
    row ``net_row[i]`` of that architecture's parameter array ``params[arch]`` of shape [n_arch, P_arch]
    (GraphSpec flat order; float32; possibly a read-only memory map).

    Attributes:
        archs: ``{name: Architecture}``.
        params: ``{name: ndarray [n_arch, P_arch]}``.
        net_row: [n] int64 row of each network in its architecture's array.
        columns: ``{name: ndarray [n]}`` per-network metadata (at least ``activation`` and ``arch``).
        images: [n, H, W] float32 in [0, 1] (the source image of each INR) or None.
        meta: how the zoo was made (format, config, seed, versions, source path).
        task_kind: ``"cnn"`` (classifiers; targets such as ``test_accuracy``) or ``"inr"`` (``label``).
    """

    def __init__(self, archs: dict[str, Architecture], params: dict[str, np.ndarray], net_row: np.ndarray,
                 columns: dict[str, np.ndarray], images: np.ndarray | None = None,
                 meta: dict[str, Any] | None = None, task_kind: str = "cnn"):
        self.archs = dict(archs)
        self.params = dict(params)
        self.net_row = np.asarray(net_row, dtype=np.int64)
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        self.images = images
        self.meta = dict(meta or {})
        if task_kind not in ("cnn", "inr"):
            raise ValueError(f"task_kind must be 'cnn' or 'inr', not {task_kind!r}")
        self.task_kind = task_kind
        n = self.net_row.shape[0]
        for key in ("arch", "activation"):
            if key not in self.columns:
                raise ValueError(f"a Zoo needs a '{key}' column")
        for key, col in self.columns.items():
            if col.shape[:1] != (n,):
                raise ValueError(f"column '{key}' has {col.shape[0]} entries for {n} networks")
        unknown = set(np.unique(self.columns["arch"]).tolist()) - set(self.archs)
        if unknown:
            raise ValueError(f"networks refer to unknown architectures {sorted(unknown)}")
        if images is not None and images.shape[0] != n:
            raise ValueError(f"images has {images.shape[0]} entries for {n} networks")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.net_row.shape[0])

    def __getitem__(self, i: int) -> ParameterGraph:
        """``zoo[i]`` is network i's ParameterGraph (so a Zoo works as a dataset for ``mg.GraphLoader``)."""
        return self.graph(i)

    def __repr__(self) -> str:
        archs = dict(Counter(self.columns["arch"].tolist())) if len(self) else {}
        return f"Zoo(nets={len(self)}, task={self.task_kind!r}, archs={archs})"

    def _indices(self, indices: Index) -> np.ndarray:
        n = len(self)
        if indices is None:
            return np.arange(n)
        if isinstance(indices, slice):
            return np.arange(n)[indices]
        if isinstance(indices, Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean mask of shape {idx.shape} for a zoo of {n} networks")
            return np.nonzero(idx)[0]
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            integral = np.issubdtype(idx.dtype, np.floating) and bool((np.isfinite(idx) & (idx == np.round(idx))).all())
            if not integral:  # astype(int64) would truncate 1.5 to network 1, and a string has no position
                raise IndexError(f"zoo indices must be integers or a boolean mask, got dtype {idx.dtype} "
                                 f"(first: {idx.reshape(-1)[0].item()!r})")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for a zoo of {n} networks")
        return np.where(idx < 0, idx + n, idx)

    def subset(self, indices: Index) -> "Zoo":
        """A zoo of the selected networks (parameter arrays are shared, not copied)."""
        idx = self._indices(indices)
        return Zoo(self.archs, self.params, self.net_row[idx], {k: v[idx] for k, v in self.columns.items()},
                   None if self.images is None else self.images[idx], self.meta, self.task_kind)

    def arch_of(self, i: int) -> Architecture:
        return self.archs[str(self.columns["arch"][i])]

    @property
    def specs(self) -> dict[str, Any]:
        """``{arch name: GraphSpec}``."""
        return {name: a.spec for name, a in self.archs.items()}

    def flat(self, indices: Index, dtype: torch.dtype = torch.float32) -> dict[str, tuple[np.ndarray, Tensor]]:
        """Flat parameters grouped by architecture: ``{arch: (positions in indices, [b, P] tensor)}``."""
        idx = self._indices(indices)
        arch = self.columns["arch"][idx]
        out = {}
        for name in dict.fromkeys(arch.tolist()):
            pos = np.nonzero(arch == name)[0]
            rows = self.net_row[idx[pos]]
            arr = np.asarray(self.params[name][rows])
            out[name] = (pos, torch.from_numpy(np.ascontiguousarray(arr)).to(dtype))
        return out

    def parameters(self, i: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """Flat parameter vector [P] of network i (GraphSpec order)."""
        i = int(self._indices([i])[0])
        name = str(self.columns["arch"][i])
        return torch.from_numpy(np.array(self.params[name][self.net_row[i]])).to(dtype)

    def module(self, i: int) -> nn.Module:
        """The i-th network as a torch module (eval mode)."""
        i = int(self._indices([i])[0])
        return self.arch_of(i).module(self.parameters(i))

    def graph(self, i: int, dtype: torch.dtype = torch.float32) -> ParameterGraph:
        """The i-th network's ParameterGraph (equal to ``mg.to_graph(zoo.module(i))``)."""
        i = int(self._indices([i])[0])
        return self.arch_of(i).spec.graph(self.parameters(i, dtype))

    # ------------------------------------------------------------------ batches
    def batch(self, indices: Index, dtype: torch.dtype = torch.float32, **graph_fields: Tensor) -> Batch:
        """A PyG ``Batch`` of the selected networks' ParameterGraphs, vectorised per architecture.

        Equal to ``mg.batch_graphs([mg.to_graph(zoo.module(i)) for i in indices])`` (same order, kernels
        padded to the largest canvas). ``graph_fields`` are per-graph tensors [B, ...] attached as-is.

        Shapes: x [ΣN, 1], edge_index [2, ΣE], edge_attr [ΣE, S²], batch [ΣN], ptr [B+1].
        """
        idx = self._indices(indices)
        if idx.size == 0:
            raise ValueError("Zoo.batch needs at least one index")
        groups = self.flat(idx, dtype)
        if len(groups) == 1:
            (name, (_, flat)), = groups.items()
            spec = self.archs[name].spec
            x, ea = spec.stacked(flat)
            return batch_stacked(spec, x, ea, **graph_fields)
        return _mixed_batch({name: (pos, self.archs[name].spec, flat) for name, (pos, flat) in groups.items()},
                            len(idx), dtype, graph_fields)

    # ------------------------------------------------------------------ splits and stats
    def final_mask(self) -> np.ndarray:
        """[n] bool: the final checkpoint of each network (all True without checkpoint columns)."""
        if "final" in self.columns:
            return self.columns["final"].astype(bool)
        if "step" in self.columns and "net_id" in self.columns:
            step = self.columns["step"].astype(np.int64)
            ids = self.columns["net_id"]
            _, inv = np.unique(ids, return_inverse=True)
            best = np.full(inv.max() + 1 if inv.size else 0, np.iinfo(np.int64).min)
            np.maximum.at(best, inv, step)
            return step == best[inv]
        return np.ones(len(self), dtype=bool)

    def split(self, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict[str, np.ndarray]:
        """Standard train/val/test indices.

        CNN zoos (Small CNN Zoo protocol): the final checkpoint of each network only; the second half (in
        zoo order) is test; the first half is shuffled with ``seed`` and cut 80/20 into train/val.
        INR zoos: split by source image (``image_id`` column, else the network index) so copies of one
        image never straddle splits. Images whose id carries a fixed split (``image_split`` column: 0 train
        pool, 2 test) keep it; the train pool is cut into train/val with ``fractions`` ratios and ``seed``.
        """
        if len(fractions) != 3 or not all(isinstance(f, numbers.Real) and math.isfinite(f) and f >= 0
                                          for f in fractions) or fractions[0] <= 0:
            raise ValueError(f"fractions must be three finite numbers >= 0 (train, val, test) with train > 0, "
                             f"got {fractions!r}")
        rng = np.random.default_rng(seed)
        if self.task_kind == "cnn":
            final = np.nonzero(self.final_mask())[0]
            half = len(final) // 2
            first, test = final[:half], final[half:]
            first = first[rng.permutation(len(first))]
            n_train = int(round(0.8 * len(first)))
            return {"train": np.sort(first[:n_train]), "val": np.sort(first[n_train:]), "test": test}
        group = self.columns["image_id"] if "image_id" in self.columns else np.arange(len(self))
        uniq, inv = np.unique(group, return_inverse=True)
        ftr, fva, fte = fractions
        if "image_split" in self.columns:
            fixed = np.zeros(len(uniq), dtype=np.int64)
            fixed[inv] = self.columns["image_split"].astype(np.int64)
            pool = np.nonzero(fixed != 2)[0]
            test_g = np.nonzero(fixed == 2)[0]
            pool = pool[rng.permutation(len(pool))]
            n_val = int(round(len(pool) * fva / (ftr + fva)))
            val_g, train_g = pool[:n_val], pool[n_val:]
        else:
            order = rng.permutation(len(uniq))
            n_test = int(round(len(uniq) * fte / (ftr + fva + fte)))
            n_val = int(round(len(uniq) * fva / (ftr + fva + fte)))
            test_g, val_g, train_g = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
        which = np.zeros(len(uniq), dtype=np.int64)
        which[val_g], which[test_g] = 1, 2
        w = which[inv]
        return {"train": np.nonzero(w == 0)[0], "val": np.nonzero(w == 1)[0], "test": np.nonzero(w == 2)[0]}

    def info(self) -> dict[str, Any]:
        """Plain-Python summary: counts per activation/arch, metric statistics, how the zoo was built."""
        out: dict[str, Any] = {"nets": len(self), "task_kind": self.task_kind,
                               "format": self.meta.get("format", "?")}
        out["activation"] = dict(sorted(Counter(self.columns["activation"].tolist()).items()))
        out["arch"] = {name: {"nets": int((self.columns["arch"] == name).sum()),
                              "params": self.archs[name].num_params,
                              "nodes": self.archs[name].spec.num_nodes,
                              "edges": self.archs[name].spec.num_edges}
                       for name in sorted(self.archs)}
        if "step" in self.columns:
            out["checkpoints"] = {"final": int(self.final_mask().sum()),
                                  "steps": sorted({int(s) for s in np.unique(self.columns["step"])})[:20]}
        stats = {}
        for key in ("test_accuracy", "train_accuracy", "test_loss", "psnr"):
            if key in self.columns and len(self):
                v = self.columns[key].astype(np.float64)
                v = v[self.final_mask()] if key != "psnr" else v
                v = v[np.isfinite(v)]
                if v.size:
                    stats[key] = {"min": float(v.min()), "mean": float(v.mean()), "max": float(v.max()),
                                  "q10": float(np.quantile(v, 0.1)), "q90": float(np.quantile(v, 0.9))}
        if stats:
            out["metrics (final checkpoints)" if self.task_kind == "cnn" else "metrics"] = stats
        if "label" in self.columns:
            out["label"] = {str(k): v for k, v in sorted(Counter(self.columns["label"].tolist()).items())}
        for key in ("optimizer",):
            if key in self.columns:
                out[key] = dict(sorted(Counter(self.columns[key].tolist()).items()))
        if self.images is not None:
            out["images"] = list(self.images.shape)
        built = {k: self.meta[k] for k in ("kind", "seed", "config", "versions", "source", "path") if k in self.meta}
        if built:
            out["built"] = built
        return out


def _mixed_batch(groups: dict[str, tuple[np.ndarray, Any, Tensor]], b: int, dtype: torch.dtype,
                 graph_fields: dict[str, Tensor]) -> Batch:
    """A Batch of graphs of several architectures in the original order, one vectorised pass per group."""
    side = max(spec.side for _, spec, _ in groups.values())
    n_per = torch.zeros(b, dtype=torch.long)
    e_per = torch.zeros(b, dtype=torch.long)
    for pos, spec, _ in groups.values():
        p = torch.from_numpy(pos)
        n_per[p], e_per[p] = spec.num_nodes, spec.num_edges
    node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), n_per.cumsum(0)])
    edge_ptr = torch.cat([torch.zeros(1, dtype=torch.long), e_per.cumsum(0)])
    n_tot, e_tot = int(node_ptr[-1]), int(edge_ptr[-1])
    x = torch.empty(n_tot, 1, dtype=dtype)
    edge_attr = torch.empty(e_tot, side * side, dtype=dtype)
    edge_index = torch.empty(2, e_tot, dtype=torch.long)
    meta = {k: torch.empty(n_tot, dtype=torch.long) for k in ("layer", "role", "sym", "block", "pos")}
    edge_layer = torch.empty(e_tot, dtype=torch.long)
    for pos, spec, flat in groups.values():
        p = torch.from_numpy(pos)
        gx, gea = spec.stacked(flat)
        gea = pad_canvas(gea, side)
        nodes = (node_ptr[p].view(-1, 1) + torch.arange(spec.num_nodes).view(1, -1)).reshape(-1)
        edges = (edge_ptr[p].view(-1, 1) + torch.arange(spec.num_edges).view(1, -1)).reshape(-1)
        x[nodes] = gx.reshape(-1, 1)
        edge_attr[edges] = gea.reshape(-1, side * side)
        ei = spec.edge_index.view(2, 1, -1) + node_ptr[p].view(1, -1, 1)
        edge_index[:, edges] = ei.reshape(2, -1)
        for k in meta:
            meta[k][nodes] = getattr(spec, k).repeat(len(pos))
        edge_layer[edges] = spec.edge_layer.repeat(len(pos))
    out = Batch(_base_cls=ParameterGraph)
    out.x, out.edge_index, out.edge_attr = x, edge_index, edge_attr
    zeros = torch.zeros(b, dtype=torch.long)
    slices: dict[str, Tensor] = {"x": node_ptr, "edge_index": edge_ptr, "edge_attr": edge_ptr}
    incs: dict[str, Any] = {"x": zeros, "edge_index": node_ptr[:-1], "edge_attr": zeros}
    for k, v in meta.items():
        out[k] = v
        slices[k], incs[k] = node_ptr, zeros
    out.edge_layer = edge_layer
    slices["edge_layer"], incs["edge_layer"] = edge_ptr, zeros
    graph_ptr = torch.arange(b + 1)
    for key, value in graph_fields.items():
        if value.shape[0] != b:
            raise ValueError(f"graph field '{key}' has leading dim {value.shape[0]}, expected {b}")
        out[key] = value
        slices[key], incs[key] = graph_ptr, zeros
    out.batch = torch.repeat_interleave(torch.arange(b), n_per)
    out.ptr = node_ptr
    out._num_graphs = b
    out._slice_dict = slices
    out._inc_dict = incs
    return out

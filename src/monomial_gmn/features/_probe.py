"""Probe features: what each network *computes* on fixed random inputs, read from its parameter graph.

A network's function is unchanged by its monomial group (permuting hidden neurons, scaling a ReLU neuron's
incoming weights and bias by d > 0 and its outgoing weights by 1/d, flipping the sign of a tanh/sin neuron on
both sides), so anything computed from its outputs is exactly invariant — up to float rounding, with no
canonical form or statistics in between. :class:`ProbeFeatures` rebuilds the parameters of every graph of a
batch *from the graph itself* (through ``edge_index``, so any node order and edge order works), runs all the
networks of one architecture at once on a fixed bank of random probe inputs, and summarises their outputs.

Random probes, never data: the bank is drawn from a seed (half i.i.d. N(0, 1), half spatially smoothed noise
for image inputs, uniform on [-1, 1] for coordinate inputs), so no image of any dataset is read.

The forward pass needs what a graph does not hold — strides, padding, pooling, which activation — so the
module is given the :class:`~monomial_gmn.graph.Architecture` list of the zoo (``zoo.archs``) and matches each
graph to one of them by its neuron layout (layer, role and symmetry of every neuron, and the edge count).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .._errors import GraphMismatchError
from ..graph import Architecture, graph_ids, kernel_side, stacked_forward

__all__ = ["ProbeFeatures", "probe_feature_names", "summarize_outputs"]

_OUTPUT_MODES = ("summary", "raw", "both")
#: Outputs are clipped to ±this (NaN → 0): a network whose forward pass overflows still gets finite features
#: (clipping the function's values commutes with the group, so invariance is kept).
_OUTPUT_BOUND = 1e12
# (networks × probes) per batched forward pass: the probe bank is fed in chunks so that the activations of one
# pass stay bounded (~70 MB in float64 for the digits CNN) whatever the batch size and the number of probes
_MAX_FORWARD_ROWS = 8192
_LOGP_FLOOR = 50.0  # agree_logp averages log-probabilities floored at -50 (a sure miss costs as much as e^-50)
_GLOBAL = ("abs_mean", "std")
_SOFTMAX = ("maxprob_mean", "maxprob_std", "entropy_mean", "entropy_std", "margin_mean", "margin_std",
            "meanprob_max", "meanprob_entropy")


def probe_feature_names(out_dim: int) -> list[str]:
    """Column names of :class:`ProbeFeatures` for networks with ``out_dim`` outputs."""
    names = [f"probe_out{k}_mean" for k in range(out_dim)] + [f"probe_out{k}_std" for k in range(out_dim)]
    names += [f"probe_{n}" for n in _GLOBAL]
    if out_dim >= 2:
        names += [f"probe_{n}" for n in _SOFTMAX] + [f"probe_prob{k}_mean" for k in range(out_dim)]
    return names


def _smooth(x: Tensor, sigma: float = 1.0) -> Tensor:
    """Separable Gaussian blur of [P, C, H, W] (reflect-free: zero padding), rescaled to unit std."""
    r = 3
    k = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-k * k / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)
    return x / x.std().clamp_min(1e-12)


def _probe_bank(shape: Sequence[int], num: int, seed: int) -> Tensor:
    """[num, *shape] probe inputs: half N(0, 1); the other half smoothed noise (images) or U[-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    half = num // 2
    gauss = torch.randn(num - half, *shape, generator=g, dtype=torch.float64)
    if len(shape) == 3:
        other = _smooth(torch.randn(half, *shape, generator=g, dtype=torch.float64))
    else:
        other = torch.rand(half, *shape, generator=g, dtype=torch.float64) * 2 - 1
    return torch.cat([gauss, other]).float()


#: Image side of the probes when an all-convolutional, globally pooled architecture does not record its input size
#: (the published Small CNN Zoo layout records only the channels): any side gives a valid forward pass there.
DEFAULT_PROBE_SIDE = 16


def probe_input_shape(arch: Any) -> tuple[int, ...]:
    """The shape of one probe input for ``arch``: its ``input_shape``, or [C, 16, 16] for a conv net that does
    not record its image size but pools globally before its first Linear. Raises ``ValueError`` otherwise."""
    shape = tuple(int(v) for v in arch.input_shape)
    kinds = [kind for kind, _ in arch.layers]
    first = next((k for k in kinds if k in ("conv2d", "linear")), None)
    if first != "conv2d" or len(shape) == 3:
        if not shape:
            raise ValueError(f"architecture '{arch.name}' does not record its input shape; probes need it")
        return shape
    first_linear = kinds.index("linear") if "linear" in kinds else len(kinds)
    if "gap" not in kinds[:first_linear]:
        raise ValueError(f"architecture '{arch.name}' records input shape {list(shape)} without the image size, and "
                         "its Linear reads the flattened map, so probes need it: load the zoo with "
                         "input_shape=[C, H, W]")
    channels = int(arch.layers[kinds.index("conv2d")][1]["in"])
    return (channels, DEFAULT_PROBE_SIDE, DEFAULT_PROBE_SIDE)


def _node_codes(g: Any) -> Tensor:
    """[N] one integer per neuron from its (layer, role, symmetry): equal codes ⇔ equal neuron layout."""
    return (g.layer * 4 + g.role) * 16 + g.sym


class _ArchIndex:
    """One architecture's layout: node codes to match graphs, and where each canonical edge's kernel goes."""

    def __init__(self, arch: Any):
        spec = arch.spec
        self.arch, self.spec = arch, spec
        self.num_nodes, self.num_edges = spec.num_nodes, spec.num_edges
        self.codes = _node_codes(spec)                                     # [N]
        src, dst = spec.edge_index
        self.keys = dst * self.num_nodes + src                             # [E], sorted (canonical order)
        # per layer: canonical edge ids, their (out*n_in + in) position (GraphSpec.layer_edges)
        self.layer_edges = [spec.layer_edges(li) for li in range(len(spec.layers))]

    def same_layout(self, other: "_ArchIndex") -> bool:
        return (self.num_nodes == other.num_nodes and self.num_edges == other.num_edges
                and torch.equal(self.codes, other.codes))

    def flat_params(self, x: Tensor, edge_attr: Tensor, src: Tensor, dst: Tensor, where: str) -> Tensor:
        """[G, P] flat parameters (spec order) of G graphs of this layout.

        x: [G, N] biases; edge_attr: [G, E, S*S]; src, dst: [G, E] local node ids of each graph's edges.
        """
        g = x.shape[0]
        dev = x.device
        table = self.keys.to(dev)
        keys = dst * self.num_nodes + src
        pos = torch.searchsorted(table, keys.contiguous()).clamp_max(self.num_edges - 1)
        ok = table[pos] == keys
        if g and (not bool(ok.all()) or not torch.equal(torch.sort(pos, dim=1).values,
                                                         torch.arange(self.num_edges, device=dev).expand(g, -1))):
            raise GraphMismatchError(f"{where}: the graph's edges are not those of architecture "
                                     f"'{self.arch.name}' (each of its (input, output) neuron pairs exactly once)")
        canon = torch.empty_like(edge_attr)
        canon.scatter_(1, pos.unsqueeze(-1).expand_as(edge_attr), edge_attr)
        s = kernel_side(edge_attr)
        flat = x.new_zeros(g, self.spec.num_params)
        for (ids, lin), rec in zip(self.layer_edges, self.spec.layers):
            ids = ids.to(dev)
            kh, kw = rec.kernel2d
            top, left = (s - kh) // 2, (s - kw) // 2
            ker = canon[:, ids].reshape(g, -1, s, s)[:, :, top:top + kh, left:left + kw]
            w = ker.new_empty(g, rec.n_out * rec.n_in, kh * kw)
            w[:, lin.to(dev)] = ker.reshape(g, -1, kh * kw)
            off = self.spec.offset(rec.weight)
            flat[:, off:off + w[0].numel()] = w.reshape(g, -1)
            if rec.bias is not None:
                off = self.spec.offset(rec.bias)
                flat[:, off:off + rec.n_out] = x[:, rec.out_nodes.to(dev)]
        return flat


class ProbeFeatures(nn.Module):
    r"""Summaries of every network's outputs on a fixed bank of random probes (exactly invariant).

    For network :math:`f` with K outputs and probes :math:`x_1..x_P`, with :math:`o_p = f(x_p)`:
    per output k the mean and std of :math:`o_{p,k}` over probes; the mean :math:`|o|` and the std of all
    outputs; and for K ≥ 2, of :math:`q_p = \mathrm{softmax}(o_p)`: the mean/std over probes of the top
    probability, the entropy and the top-two logit margin, the largest and the entropy of
    :math:`\bar q = \mathrm{mean}_p q_p`, and :math:`\bar q` itself. ``3K + 10`` columns (``2K + 2`` for K = 1).
    ``outputs="raw"`` gives the P·K outputs themselves instead (the probe bank is fixed, so column p·K + k always
    means output k on probe p) — what an INR classifier wants: an INR's outputs at fixed coordinates are samples
    of its image; ``"both"`` gives the summaries then the raw outputs.

    Transformation law: invariant. The monomial group of a network (its law:
    :mod:`monomial_gmn.graph._parameter_graph`) does not change the function it computes, so
    ``probes(g·G) == probes(G)`` up to float rounding (the tests check relative error ≤ 1e-5 in fp32).

    Args:
        architectures: the architectures whose graphs this module will see (``Architecture`` objects or their
            ``to_json()`` dicts, e.g. ``zoo.archs.values()``); all with the same number of outputs, and no
            two with the same neuron layout (the graph could not tell which one it is).
        num_probes: probes per input shape (default 128).
        seed: seed of the probe bank (default 0).
        outputs: ``"summary"`` (default), ``"raw"`` or ``"both"`` (see above).
        scales: the bank is also run multiplied by each of these input scales (default ``(1,)``); each scale
            gets its own columns. Small and large inputs show different regimes of a network (near its
            biases; dominated by its weights).
        agreement: if > 0 (K ≥ 2 outputs), also measure how much each network agrees with the best training
            networks: :meth:`fit_reference` sets a reference class per probe — the majority vote of the
            networks whose target (e.g. test accuracy) is in the top ``agreement`` fraction — and the
            features gain, per scale, the mean over probes of the softmax probability and of the log-softmax
            that the network gives the reference class. Networks that generalise well agree with each other
            on inputs off the data, too. The reference labels are buffers (saved in the ``state_dict``);
            the features stay exactly invariant (they are continuous functions of the outputs). Default 0.

    Shapes:
        batch of B graphs (ParameterGraph or PyG Batch, any mix of the given architectures) → [B, F],
        F = :attr:`num_features`.
    """

    def __init__(self, architectures: Iterable[Any], num_probes: int = 128, seed: int = 0, outputs: str = "summary",
                 scales: Sequence[float] = (1.0,), agreement: float = 0.0):
        super().__init__()
        archs = [a if isinstance(a, Architecture) else Architecture.from_json(a, where="architectures")
                 for a in architectures]
        if not archs:
            raise ValueError("ProbeFeatures: needs at least one architecture")
        if num_probes < 2:
            raise ValueError(f"ProbeFeatures: num_probes must be >= 2, got {num_probes}")
        if outputs not in _OUTPUT_MODES:
            raise ValueError(f"ProbeFeatures: outputs must be one of {_OUTPUT_MODES}, got {outputs!r}")
        scales = tuple(float(v) for v in scales)
        if not scales or not all(math.isfinite(v) and v > 0 for v in scales) or len(set(scales)) != len(scales):
            raise ValueError(f"ProbeFeatures: scales must be distinct positive numbers, got {list(scales)}")
        agreement = float(agreement)
        if not (math.isfinite(agreement) and 0.0 <= agreement <= 1.0):
            raise ValueError(f"ProbeFeatures: agreement must be a fraction in [0, 1], got {agreement}")
        self.num_probes, self.seed, self.mode, self.scales = int(num_probes), int(seed), outputs, scales
        self.agreement = agreement
        self.index = [_ArchIndex(a) for a in archs]
        outs = set()
        for ix in self.index:
            outs.add(int(ix.spec.layers[-1].n_out))
        if len(outs) != 1:
            raise ValueError(f"ProbeFeatures: the architectures have different output counts {sorted(outs)}; "
                             "their features would not line up")
        self.out_dim = outs.pop()
        for i, a in enumerate(self.index):
            for b in self.index[:i]:
                if a.same_layout(b):
                    raise ValueError(f"ProbeFeatures: architectures '{b.arch.name}' and '{a.arch.name}' have the "
                                     "same neuron layout, so their graphs cannot be told apart")
        if len({a.name for a in archs}) != len(archs):
            raise ValueError("ProbeFeatures: two architectures share a name; names must be unique")
        self._shapes = {a.name: probe_input_shape(a) for a in archs}
        shapes = sorted(set(self._shapes.values()))
        self._shape_slot = {s: i for i, s in enumerate(shapes)}
        for i, s in enumerate(shapes):
            self.register_buffer(f"bank{i}", _probe_bank(s, self.num_probes, self.seed + 7919 * i))
        if self.agreement > 0:
            if self.out_dim < 2:
                raise ValueError(f"ProbeFeatures: agreement needs networks with >= 2 outputs (classifiers), "
                                 f"these have {self.out_dim}")
            for i in range(len(shapes)):  # -1: not fitted yet
                self.register_buffer(f"reference{i}", torch.full((len(scales) * self.num_probes,), -1))
        self.architectures = [a.to_json() for a in archs]

    #: a boosted-tree model reads these features on a float64 copy of the batch (no float32 rounding)
    float64 = True

    @property
    def num_features(self) -> int:
        return len(self.feature_names())

    @property
    def needs_reference(self) -> bool:
        """True when the features include agreement columns, which need :meth:`fit_reference` first."""
        return self.agreement > 0

    @property
    def reference_fitted(self) -> bool:
        """True once :meth:`fit_reference` has set reference classes (always True without agreement)."""
        if self.agreement <= 0:
            return True
        return any(bool((getattr(self, f"reference{i}") >= 0).all()) for i in range(len(self._shape_slot)))

    def feature_names(self) -> list[str]:
        tags = [""] if len(self.scales) == 1 else [f"x{v:g}_" for v in self.scales]
        raw = [f"{t}probe{p}_out{k}" for t in tags for p in range(self.num_probes) for k in range(self.out_dim)]
        summary = [t + n for t in tags for n in probe_feature_names(self.out_dim)]
        agree = [t + n for t in tags for n in ("agree_p", "agree_logp")] if self.agreement > 0 else []
        return {"summary": summary, "raw": raw, "both": summary + raw}[self.mode] + agree

    def _bank(self, arch: Any) -> Tensor:
        return getattr(self, f"bank{self._shape_slot[self._shapes[arch.name]]}")

    def outputs(self, data: Data) -> Tensor:
        """[B, S·P, K] outputs of each network of the batch on the probe bank times each of the S scales
        (scale-major; dtype of ``data.x``).

        The forward pass runs in float64 whatever the graph's dtype, so rounding inside it does not add
        to the invariance error of float32 inputs (a rescaled float32 graph differs from the original
        by the rounding of its stored weights only)."""
        return self._outputs64(data).to(data.x.dtype)

    def _outputs64(self, data: Data, slots: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """[B, S·P, K] float64 outputs (and, with ``slots``, each network's probe-bank slot [B])."""
        x_all, ei = data.x, data.edge_index
        n = x_all.shape[0]
        batch = graph_ids(data, n, x_all.device)
        b = int(batch.max()) + 1 if n else 0
        b = max(b, int(getattr(data, "num_graphs", b) or b))
        node_count = torch.bincount(batch, minlength=b)
        node_start = torch.cumsum(node_count, 0) - node_count
        egraph = batch[ei[1]]
        order = torch.argsort(egraph, stable=True)
        edge_count = torch.bincount(egraph, minlength=b)
        edge_start = torch.cumsum(edge_count, 0) - edge_count
        codes = _node_codes(data)
        out = x_all.new_zeros(b, len(self.scales) * self.num_probes, self.out_dim, dtype=torch.float64)
        done = torch.zeros(b, dtype=torch.bool, device=x_all.device)
        slot = torch.full((b,), -1, dtype=torch.long, device=x_all.device)
        dev = x_all.device
        for ix in self.index:
            cand = torch.nonzero((node_count == ix.num_nodes) & (edge_count == ix.num_edges)).flatten()
            if cand.numel() == 0:
                continue
            nodes = node_start[cand].unsqueeze(1) + torch.arange(ix.num_nodes, device=dev)  # [G, N]
            match = (codes[nodes] == ix.codes.to(dev)).all(1)
            cand, nodes = cand[match], nodes[match]
            if cand.numel() == 0:
                continue
            edges = order[edge_start[cand].unsqueeze(1) + torch.arange(ix.num_edges, device=dev)]  # [G, E]
            start = node_start[cand].unsqueeze(1)
            src, dst = ei[0][edges] - start, ei[1][edges] - start
            where = f"graph {int(cand[0])} of the batch" if cand.numel() == 1 else \
                f"graphs {int(cand[0])}.. of the batch"
            flat = ix.flat_params(x_all[nodes, 0].double(), data.edge_attr[edges].double(), src, dst, where)
            bank = self._bank(ix.arch).to(dtype=flat.dtype, device=flat.device)
            probes = torch.cat([bank * v for v in self.scales]) if len(self.scales) > 1 else bank
            params = ix.arch.unflatten(flat)
            step = max(1, _MAX_FORWARD_ROWS // max(int(cand.numel()), 1))
            o = torch.cat([stacked_forward(ix.arch, params, probes[i:i + step])
                           for i in range(0, probes.shape[0], step)], dim=1)
            out[cand] = o.nan_to_num(nan=0.0, posinf=_OUTPUT_BOUND, neginf=-_OUTPUT_BOUND).clamp(-_OUTPUT_BOUND,
                                                                                                  _OUTPUT_BOUND)
            done[cand] = True
            slot[cand] = self._shape_slot[self._shapes[ix.arch.name]]
        if not bool(done.all()):
            bad = int(torch.nonzero(~done)[0])
            names = ", ".join(a.arch.name for a in self.index)
            raise GraphMismatchError(f"graph {bad} of the batch matches none of the probe architectures ({names}): "
                                     "the probe readout can only run networks of the architectures it was given")
        return (out, slot) if slots else out

    @torch.no_grad()
    def fit_reference(self, batches: Data | Iterable[Data], targets: Any = None) -> "ProbeFeatures":
        """Set the reference class of every probe (``agreement`` > 0): per probe and scale, the most frequent
        top class among the networks whose target is in the top ``agreement`` fraction.

        Args:
            batches: training networks (a batch or an iterable of batches).
            targets: [B] one number per network, higher = better (e.g. test accuracy), in batch order. Required:
                the fit is supervised, and a batch's own ``y`` field is never read here.
        """
        if self.agreement <= 0:
            raise ValueError("ProbeFeatures.fit_reference: this module was built with agreement=0")
        if targets is None:
            raise ValueError("ProbeFeatures.fit_reference needs the training targets (one per network, in batch "
                             "order)")
        batches = [batches] if isinstance(batches, Data) else list(batches)
        labels, slot_ids = [], []
        for bt in batches:
            o, sl = self._outputs64(bt, slots=True)
            labels.append(o.argmax(-1).cpu())
            slot_ids.append(sl.cpu())
        if not labels:
            raise ValueError("ProbeFeatures.fit_reference: no networks to fit on")
        lab, sl = torch.cat(labels), torch.cat(slot_ids)
        y = torch.as_tensor(np.asarray(targets, dtype=np.float64))
        if y.numel() == 0 or y.numel() % len(lab):
            raise ValueError(f"ProbeFeatures.fit_reference: {y.numel()} targets for {len(lab)} networks")
        y = y.reshape(len(lab), -1)[:, 0]
        if not bool(torch.isfinite(y).all()):
            raise ValueError("ProbeFeatures.fit_reference: the targets hold NaN or infinite values")
        for i in range(len(self._shape_slot)):
            mine = sl == i
            if not bool(mine.any()):
                continue
            keep = max(1, math.ceil(self.agreement * int(mine.sum())))
            cut = torch.sort(y[mine], descending=True).values[keep - 1]
            pick = mine & (y >= cut)
            counts = F.one_hot(lab[pick], self.out_dim).sum(0)  # [S·P, K]
            getattr(self, f"reference{i}").copy_(counts.argmax(-1))
        return self

    def _agreement(self, o: Tensor, slot: Tensor) -> Tensor:
        """[B, S·P, K] outputs → [B, 2·S]: per scale, mean softmax probability and log-softmax of the
        reference class."""
        ref = torch.stack([getattr(self, f"reference{int(i)}") for i in slot.tolist()]) if len(slot) else \
            torch.zeros(0, o.shape[1], dtype=torch.long)
        if bool((ref < 0).any()):
            raise ValueError("ProbeFeatures(agreement>0): call fit_reference on training networks first "
                             "(model.fit_reference(train_batches, train_targets); a GBM's fit does it)")
        logp = o.log_softmax(-1).gather(-1, ref.to(o.device).unsqueeze(-1)).squeeze(-1)  # [B, S·P]
        logp = logp.view(o.shape[0], len(self.scales), self.num_probes)
        cols = torch.stack([logp.exp().mean(-1), logp.clamp_min(-_LOGP_FLOOR).mean(-1)], -1)  # [B, S, 2]
        return cols.flatten(1)

    def forward(self, data: Data) -> Tensor:
        with torch.no_grad():
            o, slot = self._outputs64(data, slots=True)
            parts = []
            if self.mode in ("summary", "both"):
                per_scale = o.view(o.shape[0], len(self.scales), self.num_probes, self.out_dim)
                parts += [summarize_outputs(per_scale[:, i]) for i in range(len(self.scales))]
            if self.mode in ("raw", "both"):
                parts.append(o.flatten(1))
            if self.agreement > 0:
                parts.append(self._agreement(o, slot))
            return torch.cat(parts, 1).to(data.x.dtype)

    def extra_repr(self) -> str:
        return (f"archs={[a.arch.name for a in self.index]}, probes={self.num_probes}, out={self.out_dim}, "
                f"outputs={self.mode}, scales={list(self.scales)}"
                + (f", agreement={self.agreement:g}" if self.agreement > 0 else ""))


def summarize_outputs(o: Tensor) -> Tensor:
    """[B, P, K] outputs → [B, F] summaries (column order of :func:`probe_feature_names`)."""
    k = o.shape[-1]
    cols = [o.mean(1), o.std(1), o.abs().mean((1, 2)).unsqueeze(1), o.flatten(1).std(1).unsqueeze(1)]
    if k >= 2:
        logp = o.log_softmax(-1)
        p = logp.exp()
        top = p.max(-1).values
        ent = -(p * logp).sum(-1)
        srt = o.topk(2, dim=-1).values
        margin = srt[..., 0] - srt[..., 1]
        pm = p.mean(1)
        pm_ent = -(pm * pm.clamp_min(1e-30).log()).sum(-1)
        for t in (top, ent, margin):
            cols += [t.mean(1, keepdim=True), t.std(1, keepdim=True)]
        cols += [pm.max(-1, keepdim=True).values, pm_ent.unsqueeze(1), pm]
    return torch.cat(cols, 1)


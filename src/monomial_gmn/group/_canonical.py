"""Canonical forms: a map from each network to a representative of its orbit under scalings and signs.

The group acts by the law of :mod:`monomial_gmn.graph._parameter_graph`. A canonical form removes the factors d
and keeps the permutation:
``canonical_form(g·G).graph == π_g·canonical_form(G).graph`` for every group element g = (π, d). A
permutation-equivariant network run on the canonical form is then exactly invariant (or, with the edit mapped
back by :meth:`CanonicalForm.lift`, exactly equivariant) under the whole monomial group: canonicalisation in
the sense of Kaba et al. (ICML 2023), with a closed-form canonicalising map instead of a learned one.

Two steps, both vectorised over a batch of mixed architectures and activations:

1. **Orientation** (:func:`_orient`), layer by layer from the input. Every neuron's incoming vector
   v_i = (W[i, :], b_i) — all kernel entries of every incoming edge and the bias — transforms as d_i·v_i once
   the neurons it reads are canonical, so a factor c(v_i) with c(d·v) = d·c(v) removes d_i:

   ==================  ================================================================
   symmetry            c(v)
   ==================  ================================================================
   ``positive_scale``  ‖v‖ (the incoming vector gets unit norm)
   ``sign``            sign(Σ_k v_k³) (an odd statistic; made positive; ties: see below)
   ``scale``           ‖v‖ · sign(Σ_k v_k³)
   ``none``, fixed     1
   ==================  ================================================================

   Neurons tied across a residual addition (same ``block`` and ``pos`` in several layers) share one factor:
   they are oriented at their first layer with a non-zero incoming vector, and the factor is applied to every
   tied copy.
2. **Balance** (``scale="balance"``, the default) for ``positive_scale`` and ``scale`` neurons: among all
   positive rescalings of the oriented network, the one of least total squared weight
   ``Σ_{j→i} ‖W_ij‖² e^{2(u_i − u_j)} + Σ_i b_i² e^{2u_i}`` (a convex problem in u, one u per tied group).
   Its minimiser equalises each neuron's incoming and outgoing energy — the form that training with weight
   decay drifts towards, so the representative looks like trained weights. Solved by coordinate descent over
   groups of neurons that share no edge (all the groups whose first layer is the same), each update
   ``u_s += ¼ log(out_s / in_s)`` being the exact minimiser in u_s; sweeps repeat until the largest update is
   below ``tol`` (in log scale), not for a fixed count. Each network of a batch stops on its own, so its
   representative is the same whatever else is in the batch. ``scale="norm"`` stops after step 1 (unit norms).

Ties and degenerate neurons (documented behaviour, tested):
- A neuron whose incoming vector is exactly zero at every tied copy computes act(0) = 0 for every activation
  with a non-trivial factor (ReLU, LeakyReLU, tanh, sin, identity). Its outgoing weights are set to zero in the
  representative (the function is unchanged) and it is marked ``determined = False``: its factor is not
  recovered, and :meth:`CanonicalForm.lift` gives such neurons (and their edges) a zero edit.
- ``sign`` (and the sign part of ``scale``) at a tie, |Σ v³| ≤ 1e-9 · Σ |v|³ (e.g. v = (a, −a), common in
  quantised nets): the sign is decided by a second odd statistic that weights every incoming term by what the
  group cannot change — the kernel entry's offset from the canvas centre, and the source neuron's identity: a
  fixed (input) neuron's index, a hidden source's oriented bias and the normalised second statistic of its own
  incoming vector (a signature propagated from the inputs) —; if that ties too, by Σ_k (1 + index_k)·W[k, i]³
  over the outgoing weights to fixed (output) neurons. Only if all three tie is the sign kept as given, and
  then the representative is not sign-invariant for that neuron: two hidden sources told apart only by their
  outgoing weights, read with opposite signs (on random ±0.5 tanh MLPs of width 4, 16 of 200 group elements
  still change the representative; 122 of 200 with Σ v³ alone). Real-valued trained nets have no exact ties:
  there only Σ v³ decides, exactly whenever it exceeds its rounding error (≈ 1e-16 relative in float64).
- Balance skips a neuron with zero incoming or zero outgoing energy (it keeps its unit-norm orientation), so
  the iteration never runs to infinity.
Invariance does not depend on the number of sweeps: the iteration starts from the oriented network, which
already carries no factor, and every step is a deterministic, permutation-equivariant function of it.

All arithmetic is in float64; the representative is returned in the input's dtype, computed as one
multiplication of the input by the composed factors (so rounding is that of a single product).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph import Symmetry, fixed_index, graph_ids, magnitude_free, sign_free
from ._structure import SymmetryStructure

__all__ = ["CanonicalForm", "canonical_form", "CANONICAL_SCALES"]

#: The scale normalisations :func:`canonical_form` offers.
CANONICAL_SCALES = ("balance", "norm")

_REQUIRED = ("x", "edge_index", "edge_attr", "sym", "layer", "block", "pos")


@dataclass
class CanonicalForm:
    """The canonical representative of a graph (or batch) and the element that maps the input to it.

    Attributes:
        graph: the representative (a shallow copy of the input with new ``x`` [N, F], ``edge_attr`` [E, K]).
        factor: [N] float64, the factor f_i with ``graph = f·input`` by the law (1 on fixed and ``none``
            neurons, and on undetermined ones).
        determined: [N] bool, False for neurons whose incoming vector is zero at every tied copy (their
            outgoing weights are zeroed in ``graph``; see the module docstring).
        sweeps: balance sweeps run (0 for ``scale="norm"``).
    """

    graph: Data
    factor: Tensor
    determined: Tensor
    sweeps: int = 0

    def lift(self, x: Tensor, edge_attr: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """Map node/edge features that transform by the law from the canonical frame back to the input's.

        ``x_i / f_i`` and ``e_{j→i} · f_j / f_i``; rows of undetermined neurons and of edges touching one
        are set to zero (their factor is unknown, so zero is the only equivariant value).

        Shapes: x [N, F], edge_attr [E, K], edge_index [2, E] → (x [N, F], edge_attr [E, K]).
        """
        f = self.factor
        src, dst = edge_index
        node = torch.where(self.determined, 1.0 / f, torch.zeros_like(f)).to(x.dtype).unsqueeze(-1)
        ok = self.determined[src] & self.determined[dst]
        edge = torch.where(ok, f[src] / f[dst], torch.zeros_like(f[src])).to(edge_attr.dtype).unsqueeze(-1)
        return x * node, edge_attr * edge


def canonical_form(graph: Data, scale: str = "balance", tol: float = 1e-9, max_sweeps: int = 10_000,
                   structure: SymmetryStructure | None = None) -> CanonicalForm:
    """The canonical representative of each network's scale/sign orbit (see the module docstring).

    Exact sign ties (|Σ v³| ≤ 1e-9 · Σ |v|³ for a tanh/sin neuron, e.g. quantised weights ±a) are broken by
    further odd statistics weighted by what the group never moves (kernel offsets, input and output indices, the
    sources' own oriented statistics); a tie that survives all of them keeps the given sign, and then the
    representative is not sign-invariant for that neuron (``monomial_gmn.group._canonical`` has the details).

    Args:
        graph: a ParameterGraph or a PyG Batch (mixed architectures, activations and residual ties allowed).
        scale: ``"balance"`` (least total squared weight; default) or ``"norm"`` (unit incoming norms).
        tol: balance stops when the largest log-scale update of a sweep is at most ``tol``.
        max_sweeps: a safeguard; reaching it warns (the result is still exactly invariant, only farther
            from the least-energy point).
        structure: the graph's :class:`SymmetryStructure`, if already built.

    Returns:
        a :class:`CanonicalForm`; ``canonical_form(g·G).graph`` equals ``π_g·canonical_form(G).graph``.

    Shapes: x [N, F], edge_attr [E, K] in and out.
    """
    if scale not in CANONICAL_SCALES:
        raise ValueError(f"canonical_form: scale must be one of {CANONICAL_SCALES}, not {scale!r}")
    if not tol > 0:
        raise ValueError(f"canonical_form: tol must be > 0, got {tol}")
    for key in _REQUIRED:
        if getattr(graph, key, None) is None:
            raise ValueError(f"canonical_form: the graph has no '{key}' field; make it with monomial_gmn.to_graph")
    st = structure if structure is not None else SymmetryStructure(graph)
    x = graph.x.to(torch.float64)
    e = graph.edge_attr.to(torch.float64)
    src, dst = graph.edge_index
    n, S = x.shape[0], st.num_slots
    # slot index per node, fixed nodes on an extra slot S whose factor stays 1
    slot = torch.where(st.node_slot >= 0, st.node_slot, torch.full_like(st.node_slot, S))
    # [S+1] symmetry per slot, the extra slot S (fixed nodes) last
    sym = torch.cat([st.slot_sym, torch.tensor([int(Symmetry.FIXED)], device=st.slot_sym.device)])
    oriented = _orient(x, e, src, dst, slot, sym, graph.layer, S, None)      # Σ v³ alone: enough without ties
    if oriented is None:                                                      # an exact sign tie somewhere
        fixed = slot == S         # 1 + a fixed neuron's row in its layer: an identity the group never changes
        rank = torch.where(fixed, fixed_index(graph, n, x.device) + 1, 0).to(torch.float64)
        oriented = _orient(x, e, src, dst, slot, sym, graph.layer, S, rank)
    f, dead, zeroed = oriented
    sweeps = 0
    if scale == "balance":
        f, sweeps = _balance(graph, x, e, src, dst, slot, sym, graph.layer, f, dead, zeroed, S, tol, max_sweeps)
    fn = f[slot]                                        # [N] factor per node
    cx = x * fn.unsqueeze(-1)
    ce = e * (fn[dst] / fn[src]).unsqueeze(-1)
    determined = ~dead[slot]
    ce = torch.where(zeroed[src].unsqueeze(-1), torch.zeros_like(ce), ce)
    out = copy.copy(graph)
    out.x = cx.to(graph.x.dtype)
    out.edge_attr = ce.to(graph.edge_attr.dtype)
    return CanonicalForm(out, torch.where(determined, fn, torch.ones_like(fn)), determined, sweeps)


def _orient(x: Tensor, e: Tensor, src: Tensor, dst: Tensor, slot: Tensor, sym: Tensor, layer: Tensor,
            S: int, fixed_rank: Tensor | None) -> tuple[Tensor, Tensor, Tensor] | None:
    """Step 1: per-slot factors f [S+1] (float64) with f·G oriented, the dead mask [S+1] and the nodes [N]
    whose outgoing weights are zeroed (the copies of a slot before its first non-zero incoming vector: each
    computes act(0 + earlier copies) = 0). ``fixed_rank`` None: orient by Σ v³ alone and return None as soon
    as a sign-free slot ties (the caller then runs again with ``fixed_rank`` [N], 1 + each fixed node's row in
    its layer and 0 elsewhere, and the tie-breaking statistics); a batch without ties is oriented exactly as by
    the second pass."""
    dev = x.device
    scaled, signed = magnitude_free(sym), sign_free(sym)
    movable = scaled | signed
    f = torch.ones(S + 1, dtype=torch.float64, device=dev)
    done = ~movable
    dead = torch.zeros(S + 1, dtype=torch.bool, device=dev)
    zeroed = torch.zeros(x.shape[0], dtype=torch.bool, device=dev)   # nodes whose outgoing weights are zeroed
    node_mov = movable[slot]
    levels = torch.unique(layer[node_mov]).tolist() if bool(node_mov.any()) else []
    bias_sq, bias_cube = (x * x).sum(-1), (x * x * x).sum(-1)
    any_sign = bool(signed.any())
    sig = torch.zeros(S + 1, dtype=torch.float64, device=dev)   # an invariant signature of each oriented slot
    for lev in levels:
        nodes = node_mov & (layer == lev) & ~done[slot]
        if not bool(nodes.any()):
            continue
        fn = f[slot]
        ein = nodes[dst]
        ed, es = dst[ein], src[ein]
        ratio = torch.where(zeroed[es], torch.zeros_like(fn[es]), fn[ed] / fn[es])
        v = e[ein] * ratio.unsqueeze(-1)                        # incoming kernels in the current frame (law)
        sd = slot[ed]
        fb = fn[nodes]
        sq = torch.zeros(S + 1, dtype=torch.float64, device=dev)
        sq.index_add_(0, sd, (v * v).sum(-1)).index_add_(0, slot[nodes], bias_sq[nodes] * fb * fb)
        v3 = v * v * v
        cube = torch.zeros(S + 1, dtype=torch.float64, device=dev)
        cube.index_add_(0, sd, v3.sum(-1)).index_add_(0, slot[nodes], bias_cube[nodes] * fb ** 3)
        here = torch.zeros(S + 1, dtype=torch.bool, device=dev)
        here[slot[nodes]] = True
        alive = here & (sq > 0)
        mag = torch.where(scaled & alive, sq.sqrt(), torch.ones_like(sq))
        odd = cube
        if any_sign:     # ReLU-only batches never reach the tie statistics
            bias3 = (x[nodes] * fb.unsqueeze(-1)) ** 3
            abs3 = torch.zeros(S + 1, dtype=torch.float64, device=dev).index_add_(0, sd, v3.abs().sum(-1))
            tied = cube.abs() <= _TIE * abs3.index_add_(0, slot[nodes], bias3.abs().sum(-1))
            if fixed_rank is None:            # first pass: Σ v³ only; None asks for the pass with tie-breaking
                if bool((signed & alive & tied).any()):
                    return None
            else:
                second, size = _second_statistic(v3, bias3, sd, es, x, fn, slot, nodes, fixed_rank, sig, S)
                odd = _outgoing_tie_break(torch.where(tied, second, cube), e, src, dst, slot, nodes, fn,
                                          fixed_rank, S)
        sgn = torch.where(signed & alive & (odd < 0), -1.0, 1.0).to(torch.float64)
        f = torch.where(alive, f / (mag * sgn), f)
        if any_sign and fixed_rank is not None:   # normalised, oriented: invariant; tells later layers' sources apart
            sig = torch.where(alive, 0.5 * (second / size.clamp_min(1e-300)).abs(), sig)
        done = done | alive
        zeroed = zeroed | (nodes & ~alive[slot])
    dead = movable & ~done
    return f, dead, zeroed


#: Relative size below which an odd statistic counts as a tie (|Σ| ≤ TIE · Σ|terms|): far above the float64
#: rounding of the sums (about n·1e-16), far below any real asymmetry of fp32 weights.
_TIE = 1e-9


def _position_weights(k: int, device) -> Tensor:
    """[k] float64 positive weights of the entries of a kernel canvas, a function of each entry's offset from the
    canvas centre (so a kernel padded onto a larger canvas keeps its weights), distinct for distinct offsets."""
    side = max(int(round(k ** 0.5)), 1)
    if side * side != k:                                   # not a square canvas: plain positions
        return 2.0 + torch.sin(0.7 * torch.arange(k, device=device, dtype=torch.float64) + 0.1)
    r = (torch.arange(k, device=device) // side - side // 2).to(torch.float64)
    c = (torch.arange(k, device=device) % side - side // 2).to(torch.float64)
    return 2.0 + torch.sin(0.7 * r + 0.3 * c + 0.1)


def _second_statistic(v3: Tensor, bias3: Tensor, sd: Tensor, es: Tensor, x: Tensor, fn: Tensor, slot: Tensor,
                      nodes: Tensor, fixed_rank: Tensor, sig: Tensor, S: int) -> tuple[Tensor, Tensor]:
    """The odd statistic [S+1] that orients a sign-symmetric slot where Σ v³ ties: each incoming term weighted by
    what the group cannot change — the kernel offset from the centre (spatial positions are never permuted), and
    the source neuron: a fixed neuron by its index, a hidden one by its oriented bias and its signature ``sig``
    (its own normalised second statistic; both invariant, since sources are oriented first). Zero where it ties
    too. Returns (the statistic, the sum of its absolute terms [S+1]).

    Shapes: v3 [E_l, K] (cubes of this level's incoming kernels in the current frame), bias3 [n_l, F] (cubes of
    this level's biases, same frame), sd/es [E_l] slot of the target / node of the source of each edge, nodes [N]
    bool (this level's nodes).
    """
    dev = v3.device
    w_pos = _position_weights(v3.shape[-1], dev)
    b_src = x[es, 0] * fn[es] if x.shape[-1] else torch.zeros_like(fn[es])
    phi = torch.where(fixed_rank[es] > 0, 1.0 + fixed_rank[es], 2.0 + torch.tanh(b_src) + sig[slot[es]])
    terms = phi.unsqueeze(-1) * v3 * w_pos
    second = torch.zeros(S + 1, dtype=torch.float64, device=dev)
    second.index_add_(0, sd, terms.sum(-1)).index_add_(0, slot[nodes], bias3.sum(-1))
    size = torch.zeros(S + 1, dtype=torch.float64, device=dev)
    size.index_add_(0, sd, terms.abs().sum(-1)).index_add_(0, slot[nodes], bias3.abs().sum(-1))
    return torch.where(second.abs() <= _TIE * size, torch.zeros_like(second), second), size


def _outgoing_tie_break(odd: Tensor, e: Tensor, src: Tensor, dst: Tensor, slot: Tensor, nodes: Tensor, fn: Tensor,
                        fixed_rank: Tensor, S: int) -> Tensor:
    """Where ``odd`` [S+1] is still exactly 0, a third odd statistic from the slot's outgoing weights to fixed
    (output) neurons, which the group never moves: Σ_k (1 + index_k) · W[k, i]³ in the current frame (W[k, i]
    carries 1/d_i, so the statistic is odd in d_i). Other entries are returned unchanged."""
    if not bool((odd == 0).any()):
        return odd
    eo = nodes[src] & (slot[dst] == S) & (odd[slot[src]] == 0)
    if not bool(eo.any()):
        return odd
    so, do = src[eo], dst[eo]
    w3 = (e[eo] / fn[so].unsqueeze(-1)) ** 3
    w_pos = _position_weights(e.shape[-1], e.device)
    terms = (1.0 + fixed_rank[do]).unsqueeze(-1) * w3 * w_pos
    third = torch.zeros_like(odd).index_add_(0, slot[so], terms.sum(-1))
    size = torch.zeros_like(odd).index_add_(0, slot[so], terms.abs().sum(-1))
    third = torch.where(third.abs() <= _TIE * size, torch.zeros_like(third), third)
    return torch.where(odd == 0, third, odd)


def _balance(batch_of: Data, x: Tensor, e: Tensor, src: Tensor, dst: Tensor, slot: Tensor, sym: Tensor, layer: Tensor,
             f: Tensor, dead: Tensor, zeroed: Tensor, S: int, tol: float, max_sweeps: int) -> tuple[Tensor, int]:
    """Step 2: least-energy positive rescaling of the oriented network; returns (f·e^u [S+1], sweeps)."""
    dev = x.device
    free = magnitude_free(sym) & ~dead
    if not bool(free.any()):
        return f, 0
    ss, sd = slot[src], slot[dst]
    keep = (ss != sd) & ~zeroed[src]                     # an edge inside one tied group has constant energy
    ss, sd = ss[keep], sd[keep]
    ew = (e[keep] * e[keep]).sum(-1) * (f[sd] / f[ss]) ** 2                 # edge energies, oriented frame
    bw = torch.zeros(S + 1, dtype=torch.float64, device=dev).index_add_(
        0, slot, (x * x).sum(-1) * f[slot] ** 2)                            # bias energy per slot
    bw[S] = 0.0
    # update groups: free slots by the layer of their first node; neurons of one layer share no edge
    first = torch.full((S + 1,), torch.iinfo(torch.long).max, dtype=torch.long, device=dev)
    first = first.scatter_reduce(0, slot, layer, reduce="amin")
    groups = []
    local = torch.full((S + 1,), -1, dtype=torch.long, device=dev)
    for lev in torch.unique(first[free]).tolist():
        g = free & (first == lev)
        idx = g.nonzero().flatten()                      # the group's slots
        local[idx] = torch.arange(idx.numel(), device=dev)
        ei, eo = g[sd].nonzero().flatten(), g[ss].nonzero().flatten()
        coupled = bool((g[sd] & g[ss]).any())            # edges between two slots of the group (rare ties)
        groups.append((idx, ew[ei], sd[ei], ss[ei], local[sd[ei]], ew[eo], sd[eo], ss[eo], local[ss[eo]],
                       bw[idx], 0.125 if coupled else 0.25))
    # each network stops on its own once its largest update is <= tol: a network's result does not depend on
    # the other networks of its batch
    bvec = graph_ids(batch_of, x.shape[0], dev)
    num_graphs = int(bvec.max()) + 1 if bvec.numel() else 1
    slot_graph = torch.zeros(S + 1, dtype=torch.long, device=dev)
    slot_graph[slot] = bvec
    active = torch.ones(num_graphs, dtype=torch.bool, device=dev)
    u = torch.zeros(S + 1, dtype=torch.float64, device=dev)
    for sweep in range(1, max_sweeps + 1):
        biggest = torch.zeros(S + 1, dtype=torch.float64, device=dev)
        live = active[slot_graph]
        for idx, wi, di, si, li, wo, do, so, lo, bwg, rate in groups:
            k = idx.numel()
            a = torch.zeros(k, dtype=torch.float64, device=dev).index_add_(0, li, wi * torch.exp(2.0 * (u[di] - u[si])))
            a = a + bwg * torch.exp(2.0 * u[idx])
            b = torch.zeros(k, dtype=torch.float64, device=dev).index_add_(0, lo, wo * torch.exp(2.0 * (u[do] - u[so])))
            ok = (a > 0) & (b > 0) & live[idx]
            step = torch.where(ok, rate * torch.log(torch.where(ok, b / torch.where(ok, a, 1.0), 1.0)), 0.0)
            u[idx] += step
            biggest[idx] = torch.maximum(biggest[idx], step.abs())
        per_graph = torch.zeros(num_graphs, dtype=torch.float64, device=dev).scatter_reduce(
            0, slot_graph, biggest, reduce="amax")
        active = active & (per_graph > tol)
        if not bool(active.any()):
            return f * torch.exp(u), sweep
    warnings.warn(f"canonical_form: balance did not reach tol={tol:g} in {max_sweeps} sweeps (last update "
                  f"{float(biggest.max()):.3g}); the result is still exactly invariant", RuntimeWarning, stacklevel=3)
    return f * torch.exp(u), max_sweeps

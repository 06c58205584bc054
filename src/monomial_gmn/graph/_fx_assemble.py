"""Assembling the :class:`FxGraphSpec` from what the fx interpreter recorded.

Reads the interpreter's state after the walk: ``vlayer``/``vsym``/``vfixed`` per neuron id (vid), the
``group_start`` of each allocated group, the block ``cuts``, the ``ties`` between channel lists, the constraint
``events`` (for the per-block notes), the parametric layer ``records``, the ``norms``, the ``covered``
parameter names and the returned ``outputs``. Tied lists are cut at the same channel positions, tied segments
are merged into one block (one permutation and one factor), and each block gets the meet of its members'
symmetries, or ``fixed`` if any member is fixed. Neuron ids are renumbered layer by layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .._errors import UnsupportedModuleError
from ._fx_spec import FxGraphSpec, NormRecord
from ._spec import LayerRecord
from ._symmetry import Role, Symmetry, meet

if TYPE_CHECKING:
    from ._fx import _Interpreter

S = Symmetry


def assemble(it: _Interpreter) -> FxGraphSpec:
    """The spec of the walked network (raises if it has no parametric layer or an unused parameter)."""
    if not it.records:
        raise UnsupportedModuleError("", type(it.root).__name__, "it has no parametric layer (Linear/Conv)")
    missing = [n for n, _ in it.root.named_parameters() if n not in it.covered]
    if missing:
        owner = missing[0].rsplit(".", 1)[0] if "." in missing[0] else ""
        mod = it.root.get_submodule(owner) if owner else it.root
        raise UnsupportedModuleError(owner, type(mod).__name__, f"parameters {missing} are not used by any "
                                     "layer the converter reads (unused modules cannot be converted)")
    n = len(it.vlayer)
    vlayer = torch.tensor(it.vlayer)
    final = torch.empty(n, dtype=torch.long)
    final[torch.argsort(vlayer, stable=True)] = torch.arange(n)
    seg_start = torch.zeros(n + 1, dtype=torch.bool)
    seg_start[it.group_start] = True
    seg_start[n] = True
    if it.cuts:
        seg_start[list(it.cuts)] = True
    while True:  # refine: tied lists must be cut at the same channel positions
        changed = False
        for a, b in it.ties:
            bd = _run_starts(a, seg_start) | _run_starts(b, seg_start)
            for v in (a, b):
                if not bool(seg_start[v[bd]].all()):
                    seg_start[v[bd]] = True
                    changed = True
        if not changed:
            break
    seg_of = torch.cumsum(seg_start[:n].long(), 0) - 1
    starts = seg_start[:n].nonzero().flatten()
    offset = torch.arange(n) - starts[seg_of]
    nseg = int(starts.numel())
    parent = list(range(nseg))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in it.ties:
        bd = _run_starts(a, seg_start)
        for sa, sb in zip(seg_of[a[bd]].tolist(), seg_of[b[bd]].tolist()):
            ra, rb = find(sa), find(sb)
            if ra != rb:
                parent[ra] = rb
    comp = torch.tensor([find(s) for s in range(nseg)], dtype=torch.long)[seg_of]
    sym_v = torch.tensor([int(s) for s in it.vsym], dtype=torch.long)
    fixed_v = torch.tensor(it.vfixed, dtype=torch.bool)
    for a, b in it.ties:  # safety net: a tie that does not align position by position fixes its neurons
        bad = (offset[a] != offset[b]) | (comp[a] != comp[b])
        if bool(bad.any()):
            fixed_v[a[bad]] = True
            fixed_v[b[bad]] = True
    # per component: meet of the members' symmetries, fixed if any member is
    comp_sym: dict[int, Symmetry] = {}
    comp_fixed: dict[int, bool] = {}
    for c, s, f in zip(comp.tolist(), sym_v.tolist(), fixed_v.tolist()):
        comp_sym[c] = meet(comp_sym.get(c, S.SCALE), Symmetry(s))
        comp_fixed[c] = comp_fixed.get(c, False) or f or s == S.FIXED
    role_v = torch.full((n,), int(Role.HIDDEN), dtype=torch.long)
    role_v[vlayer == 0] = int(Role.INPUT)
    if it.outputs:
        out_v = torch.unique(torch.cat(it.outputs))
        key = comp * (n + 1) + offset
        is_out = torch.isin(key, key[out_v]) & (vlayer > 0)
        role_v[is_out] = int(Role.OUTPUT)
    # number the free components by their first node id (the Sequential walker's block order)
    free = [c for c in comp_sym if not comp_fixed[c]]
    first = {c: int(final[comp == c].min()) for c in free}
    block_id = {c: i for i, c in enumerate(sorted(free, key=first.get))}
    block_v = torch.tensor([block_id.get(c, -1) for c in comp.tolist()], dtype=torch.long)
    pos_v = torch.where(block_v >= 0, offset, torch.full_like(offset, -1))
    symf_v = torch.tensor([int(comp_sym[c]) if not comp_fixed[c] else int(S.FIXED) for c in comp.tolist()],
                          dtype=torch.long)
    notes: dict[int, list[str]] = {}
    for vids, sym, why in it.events:
        for c in sorted(set(comp[vids].tolist())):
            if c in block_id and sym != S.SCALE:
                notes.setdefault(block_id[c], [])
                line = f"{why} → {sym.label}"
                if line not in notes[block_id[c]]:
                    notes[block_id[c]].append(line)

    def to_final(t: Tensor) -> Tensor:
        out = torch.empty_like(t)
        out[final] = t
        return out

    layers = [LayerRecord(path, w, b, final[i], final[o], k) for path, w, b, i, o, k in it.records]
    params: list[tuple[str, tuple[int, ...]]] = []
    for rec in layers:
        params.append((rec.weight, (rec.n_out, rec.n_in, *rec.kernel)))
        if rec.bias is not None:
            params.append((rec.bias, (rec.n_out,)))
    norms = []
    for path, kind, names, vids, tracked in it.norms:
        norms.append(NormRecord(path, kind, names, final[vids], tracked))
        params += [(nm, (vids.numel(),)) for nm in names if nm is not None]
    return FxGraphSpec(layer=to_final(vlayer), role=to_final(role_v), sym=to_final(symf_v),
                       block=to_final(block_v), pos=to_final(pos_v), layers=layers, params=params,
                       norms=norms, notes=notes)


def _run_starts(vids: Tensor, seg_start: Tensor) -> Tensor:
    """[len] True where a channel list starts a new run (first entry, a segment start, or a jump)."""
    out = seg_start[vids].clone()
    if vids.numel():
        out[0] = True
        out[1:] |= vids[1:] != vids[:-1] + 1
    return out


"""digits-cnn: small CNNs trained on the sklearn digits, many at once (grouped convs, vectorised optimisers).

Each network i draws its hyperparameters from ``np.random.default_rng([seed, i])`` (so they do not depend on
how the zoo is chunked): activation, family, optimizer {adam, sgd, rmsprop}, learning rate (log-uniform), L2,
dropout, weight init (and its std), train fraction, epochs. Training is full-precision float32, batch 32,
with per-network learning-rate tensors and the three update rules written out (one masked update for all).
A network whose parameters would become non-finite is frozen at its last finite values (``diverged``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..graph import Architecture, digits_cnn_architecture, stacked_forward
from ._digits import digits
from ._zoo import Zoo

__all__ = ["CNN_DEFAULTS", "sample_cnn_hparams", "build_cnn_chunk"]

CNN_DEFAULTS: dict[str, Any] = {
    "activations": ["relu", "tanh"],
    "families": ["gap"],
    "channels": 16,
    "optimizers": ["adam", "sgd", "rmsprop"],
    "lr_range": [3e-4, 5e-2],
    "l2_range": [1e-8, 1e-2],
    "dropout_max": 0.5,
    "init_std_range": [1e-3, 0.5],
    "w_inits": ["RandomNormal", "he_normal", "glorot_normal"],
    "train_fractions": [0.1, 0.25, 0.5, 1.0],
    "epochs": [1, 8],
    "checkpoints": [0, 1, 2, 4],
    "batch_size": 32,
    "momentum": 0.9,
    "train_eval_max": 512,
}
_OPT = {"sgd": 0, "adam": 1, "rmsprop": 2}
_INIT = {"RandomNormal": 0, "he_normal": 1, "glorot_normal": 2}


def sample_cnn_hparams(seed: int, i: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of network ``i`` (deterministic in ``(seed, i)``)."""
    rng = np.random.default_rng([int(seed), int(i)])
    lu = lambda lo, hi: float(math.exp(rng.uniform(math.log(lo), math.log(hi))))  # noqa: E731
    return {
        "activation": str(rng.choice(cfg["activations"])),
        "family": str(rng.choice(cfg["families"])),
        "optimizer": str(rng.choice(cfg["optimizers"])),
        "learning_rate": lu(*cfg["lr_range"]),
        "l2reg": lu(*cfg["l2_range"]),
        "dropout": float(rng.uniform(0.0, cfg["dropout_max"])),
        "init_std": lu(*cfg["init_std_range"]),
        "w_init": str(rng.choice(cfg["w_inits"])),
        "train_fraction": float(rng.choice(cfg["train_fractions"])),
        "epochs": int(rng.integers(cfg["epochs"][0], cfg["epochs"][1] + 1)),
        "subset_seed": int(rng.integers(2**31)),
    }


def _init_params(arch: Architecture, hp: list[dict[str, Any]], gen: torch.Generator) -> dict[str, Tensor]:
    g = len(hp)
    code = torch.tensor([_INIT[h["w_init"]] for h in hp])
    std0 = torch.tensor([h["init_std"] for h in hp], dtype=torch.float32)
    out = {}
    for name, shape, _ in arch.param_shapes:
        if name.endswith("bias"):
            out[name] = torch.zeros(g, *shape)
            continue
        fan_in = math.prod(shape[1:])
        fan_out = shape[0] * math.prod(shape[2:])
        std = torch.where(code == 0, std0, torch.where(code == 1, torch.full_like(std0, math.sqrt(2.0 / fan_in)),
                                                       torch.full_like(std0, math.sqrt(2.0 / (fan_in + fan_out)))))
        out[name] = torch.randn(g, *shape, generator=gen) * std.view(-1, *([1] * len(shape)))
    return out


def _evaluate(arch: Architecture, params: dict[str, Tensor], x: Tensor, y: Tensor,
              mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Accuracy and mean cross-entropy [G] of G networks.

    ``x`` [B, ...] / ``y`` [B] shared by all networks, or per network ``x`` [G, B, ...] / ``y`` [G, B];
    ``mask`` [G, B] says which examples count (None: all).
    """
    g = next(iter(params.values())).shape[0]
    with torch.no_grad():
        logits = stacked_forward(arch, params, x)                          # [G, B, 10]
        yy = y.expand(g, -1) if y.dim() == 1 else y
        m = torch.ones(yy.shape, dtype=torch.float64) if mask is None else mask.double()
        ce = F.cross_entropy(logits.transpose(1, 2), yy, reduction="none").double()
        ce = torch.nan_to_num(ce, nan=1e6, posinf=1e6)
        correct = ((logits.argmax(-1) == yy).double() * m).sum(1)
        count = m.sum(1).clamp_min(1)
    return (correct / count).float(), ((ce * m).sum(1) / count).float()


def _train_group(arch: Architecture, hp: list[dict[str, Any]], cfg: dict[str, Any], gen: torch.Generator,
                 data: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train G networks of one architecture together.

    An epoch is one pass over the network's own training subset (``train_fraction`` of the train images).
    Networks leave the working set when they finish (or diverge), so the cost is the sum of their budgets.

    Returns:
        (net [R], epoch [R], flat [R, P], diverged [G]): one record per checkpoint (epoch 0, the epochs in
        ``cfg['checkpoints']`` below the network's own ``epochs``, and its final epoch).
    """
    g = len(hp)
    xtr, ytr = data["x_train"], data["y_train"]
    ntr = xtr.shape[0]
    bs = int(cfg["batch_size"])
    epochs = torch.tensor([h["epochs"] for h in hp])
    n_sub = torch.tensor([max(1, int(round(h["train_fraction"] * ntr))) for h in hp])
    spe = (n_sub + bs - 1) // bs                                            # steps per epoch [G]
    budget = epochs * spe
    perms = torch.stack([torch.from_numpy(np.random.default_rng(h["subset_seed"]).permutation(ntr)) for h in hp])
    lr = torch.tensor([h["learning_rate"] for h in hp], dtype=torch.float32)
    l2 = torch.tensor([h["l2reg"] for h in hp], dtype=torch.float32)
    drop = torch.tensor([h["dropout"] for h in hp], dtype=torch.float32)
    opt = torch.tensor([_OPT[h["optimizer"]] for h in hp])
    flat = arch.flatten_params(_init_params(arch, hp, gen))               # [G, P], one tensor for all layers
    wmask = torch.zeros(flat.shape[1])                                     # 1 on weights (L2), 0 on biases
    for name, shape, off in arch.param_shapes:
        if name.endswith("weight"):
            wmask[off:off + math.prod(shape)] = 1.0
    m_buf, v_buf = torch.zeros_like(flat), torch.zeros_like(flat)
    alive = torch.arange(g)
    diverged = torch.zeros(g, dtype=torch.bool)
    ckpts = torch.tensor(sorted({int(e) for e in cfg["checkpoints"]} - {0}) or [-1])
    rec_net, rec_epoch, rec_flat = [], [], []
    mom, b1, b2, rho = float(cfg["momentum"]), 0.9, 0.999, 0.9

    def record(sel: Tensor, epoch: Tensor) -> None:
        if sel.numel():
            rec_net.append(alive[sel])
            rec_epoch.append(epoch)
            rec_flat.append(flat[sel].detach().clone())

    record(torch.arange(g), torch.zeros(g, dtype=torch.long))
    t = 0
    while alive.numel():
        t += 1
        a = alive
        n = a.numel()
        u = torch.rand(n, bs, generator=gen)
        local = (u * n_sub[a].view(-1, 1)).long().clamp_max(n_sub[a].view(-1, 1) - 1)
        idx = torch.gather(perms[a], 1, local)                              # [n, bs]
        leaf = flat.requires_grad_(True)
        logits = stacked_forward(arch, arch.unflatten(leaf), xtr[idx], dropout=drop[a], generator=gen)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ytr[idx].reshape(-1), reduction="none")
        reg = (leaf * leaf * wmask).sum(1)
        (ce.view(n, bs).mean(1) + l2[a] * reg).sum().backward()
        with torch.no_grad():
            gr = torch.nan_to_num(leaf.grad, nan=0.0)
            is_sgd, is_adam = (opt[a] == 0).view(-1, 1), (opt[a] == 1).view(-1, 1)
            m = torch.where(is_sgd, mom * m_buf + gr, b1 * m_buf + (1 - b1) * gr)
            v = torch.where(is_adam, b2 * v_buf + (1 - b2) * gr * gr, rho * v_buf + (1 - rho) * gr * gr)
            upd = torch.where(is_sgd, m, torch.where(
                is_adam, (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + 1e-8), gr / (v.sqrt() + 1e-7)))
            q = leaf.detach() - lr[a].view(-1, 1) * upd
            finite = torch.isfinite(q).all(1) & (q.abs().amax(1) < 1e6)
            keep = finite.view(-1, 1)
            flat = torch.where(keep, q, leaf.detach())
            m_buf, v_buf = torch.where(keep, m, m_buf), torch.where(keep, v, v_buf)
            diverged[a] |= ~finite
            at_epoch = (t % spe[a] == 0)
            ep = torch.div(t, spe[a], rounding_mode="floor")
            done = (t >= budget[a]) | ~finite
            mid = at_epoch & ~done & torch.isin(ep, ckpts) & (ep < epochs[a])
            record(torch.nonzero(mid).flatten(), ep[mid])
            record(torch.nonzero(done).flatten(), epochs[a][done])
            if bool(done.any()):
                rest = torch.nonzero(~done).flatten()
                flat, m_buf, v_buf, alive = flat[rest], m_buf[rest], v_buf[rest], alive[rest]
    return torch.cat(rec_net), torch.cat(rec_epoch), torch.cat(rec_flat), diverged


def build_cnn_chunk(cfg: dict[str, Any], seed: int, start: int, end: int, chunk_index: int) -> Zoo:
    """Networks ``start .. end-1`` of a digits-cnn zoo, as a Zoo (one row per network and checkpoint)."""
    d = digits()
    tr, te = d["split"] != 2, d["split"] == 2
    center = lambda im: torch.from_numpy(im - 0.5).unsqueeze(1)  # noqa: E731  inputs x/16 - 0.5, [n, 1, 8, 8]
    data = {"x_train": center(d["images"][tr]), "y_train": torch.from_numpy(d["labels"][tr]),
            "x_test": center(d["images"][te]), "y_test": torch.from_numpy(d["labels"][te])}
    ntr = data["x_train"].shape[0]
    hps = [sample_cnn_hparams(seed, i, cfg) for i in range(start, end)]
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(chunk_index))
    archs: dict[str, Architecture] = {}
    params: dict[str, list[np.ndarray]] = {}
    rows: list[dict[str, Any]] = []
    row_arch: list[str] = []
    row_pos: list[int] = []
    keyed = {}
    for j, h in enumerate(hps):
        keyed.setdefault((h["family"], h["activation"]), []).append(j)
    for (family, act), members in sorted(keyed.items()):
        arch = digits_cnn_architecture(act, family, channels=int(cfg["channels"]))
        archs[arch.name] = arch
        hp = [hps[j] for j in members]
        net, epoch, flat, diverged = _train_group(arch, hp, cfg, gen, data)
        order = torch.argsort(net * 1_000_000 + epoch)
        net, epoch, flat = net[order], epoch[order], flat[order]
        k_eval = min(int(cfg["train_eval_max"]), ntr)     # train metrics on <= k_eval of the net's own images
        sub_idx = torch.zeros(len(hp), k_eval, dtype=torch.long)
        sub_mask = torch.zeros(len(hp), k_eval, dtype=torch.bool)
        for r, h in enumerate(hp):
            perm = torch.from_numpy(np.random.default_rng(h["subset_seed"]).permutation(ntr))
            n_own = min(k_eval, max(1, int(round(h["train_fraction"] * ntr))))
            sub_idx[r, :n_own], sub_mask[r, :n_own] = perm[:n_own], True
        metrics = []
        for s0 in range(0, net.numel(), 128):
            sl = slice(s0, s0 + 128)
            pk = arch.unflatten(flat[sl])
            ii = sub_idx[net[sl]]
            metrics.append(torch.stack([*_evaluate(arch, pk, data["x_train"][ii], data["y_train"][ii],
                                                   sub_mask[net[sl]]),
                                        *_evaluate(arch, pk, data["x_test"], data["y_test"])], 1))
        met = torch.cat(metrics).tolist()
        for r, (j, e) in enumerate(zip(net.tolist(), epoch.tolist())):
            h = hp[j]
            rows.append({"net_index": start + members[j], "step": e, "final": e == h["epochs"],
                         "train_accuracy": met[r][0], "train_loss": met[r][1], "test_accuracy": met[r][2],
                         "test_loss": met[r][3], "diverged": bool(diverged[j]), "hp": h})
            row_arch.append(arch.name)
            row_pos.append(r)
        params[arch.name] = flat.numpy().astype(np.float32)
    order = sorted(range(len(rows)), key=lambda r: (rows[r]["net_index"], rows[r]["step"]))
    cols: dict[str, list[Any]] = {k: [] for k in (
        "net_id", "net_index", "step", "final", "activation", "arch", "family", "optimizer", "learning_rate",
        "l2reg", "dropout", "init_std", "w_init", "train_fraction", "epochs", "train_accuracy", "train_loss",
        "test_accuracy", "test_loss", "diverged")}
    for r in order:
        row, h = rows[r], rows[r]["hp"]
        cols["net_id"].append(f"net{row['net_index']:06d}")
        cols["arch"].append(row_arch[r])
        for k in ("net_index", "step", "final", "train_accuracy", "train_loss", "test_accuracy", "test_loss",
                  "diverged"):
            cols[k].append(row[k])
        for k in ("activation", "family", "optimizer", "learning_rate", "l2reg", "dropout", "init_std", "w_init",
                  "train_fraction", "epochs"):
            cols[k].append(h[k])
    columns = {k: np.asarray(v) for k, v in cols.items()}
    net_row = np.asarray([row_pos[r] for r in order], dtype=np.int64)
    return Zoo(archs, params, net_row, columns, None, {"kind": "digits-cnn"}, "cnn")

"""The SGD loop of a torch model's run: seeded, checkpointed, resumable, distributed (see :mod:`._trainer`).

Every random draw of step t comes from generators seeded by ``(seed, t, rank)`` and the batches of epoch e
from ``(seed, e)``, so a run resumed from any checkpoint ends with the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_torch_save, atomic_write_json, safe_torch_load
from ._augment import parse_augment
from ._build import _construct, _fit_normalizer, _num_params, model_config
from ._config import TrainConfig, mix_seed
from ._distributed import DistContext
from ._evaluate import evaluate_model
from ._run import _CKPT_VERSION, _check_resume_config, _check_resume_zoo, _record, _result, _unreadable
from ._sampler import DistributedBatchSampler
from ._tasks import Task

__all__: list[str] = []


def _lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over ``warmup·total`` steps, then cosine decay to 0 at ``total``."""
    w = int(round(warmup * total))
    if w > 0 and step < w:
        return (step + 1) / w
    if total <= w:
        return 1.0
    t = (step - w) / max(1, total - w)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _train_sgd(cfg: TrainConfig, task: Task, zoo: Any, splits: dict[str, np.ndarray], ctx: DistContext,
               resume: bool, progress: bool, ckpt_path: Path, crash_after: int | None, digest: str,
               evaluate_test: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    dtype = torch.float32
    torch.manual_seed(mix_seed(cfg.seed, 0xB11D))
    mcfg = model_config(cfg, task, zoo)
    backbone = _construct(cfg, mcfg)
    _fit_normalizer(backbone, zoo, task, splits["train"], cfg.eval_batch_size)
    module = task.wrap(backbone, zoo).to(ctx.device)
    params = _num_params(module)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = DistributedBatchSampler(splits["train"], cfg.batch_size, cfg.seed, ctx.rank, ctx.world_size)
    spe = len(sampler)
    total = cfg.epochs * spe
    aug = parse_augment(cfg.augment)

    state: dict[str, Any] = {"step": 0, "epoch": 0, "best_metric": None, "best_epoch": -1, "bad_epochs": 0,
                             "history": [], "done": False, "seconds": 0.0, "nets_seen": 0}
    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if resume and ckpt_path.exists():
        try:
            ck = safe_torch_load(ckpt_path)
        except Exception as exc:
            raise ValueError(f"{ckpt_path}: unreadable checkpoint ({_unreadable(ckpt_path, exc)}); delete it to "
                             f"start the run again") from None
        if not isinstance(ck, dict) or ck.get("version") != _CKPT_VERSION or not isinstance(ck.get("config"), dict):
            raise ValueError(f"{ckpt_path}: not a checkpoint of this version of monomial-gmn")
        _check_resume_config(ck["config"], cfg, ckpt_path)
        _check_resume_zoo({**ck["config"], "zoo_digest": ck.get("zoo_digest")}, digest, cfg, ckpt_path)
        if ctx.is_main:  # the record of a run started by an older version gains the path and the digest
            atomic_write_json(out / "config.json", _record(cfg, digest, mcfg))
        module.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        state.update(ck["state"])
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", _record(cfg, digest, mcfg))

    def save() -> None:
        if ctx.is_main:
            atomic_torch_save({"version": _CKPT_VERSION, "config": cfg.to_dict(), "model": module.state_dict(),
                               "optimizer": opt.state_dict(), "best_state": best_state, "state": dict(state),
                               "zoo_digest": digest, "model_config": mcfg.to_dict()}, ckpt_path)

    net = module
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    bar = tqdm(total=total, initial=state["step"], desc=f"train {cfg.model}", unit="step", dynamic_ncols=True,
               disable=not (progress and ctx.is_main), leave=False)
    t_start = time.perf_counter() - state["seconds"]
    module.train()
    while not state["done"] and state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        for local_idx, gcount in sampler.batches(epoch, start=state["step"] - epoch * spe):
            step = state["step"]
            torch.manual_seed(mix_seed(cfg.seed, step, ctx.rank, 1))
            gen = torch.Generator().manual_seed(mix_seed(cfg.seed, step, ctx.rank, 2))
            batch = aug(zoo.batch(local_idx, dtype=dtype), gen).to(ctx.device)
            target = task.targets(local_idx).to(ctx.device)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(step, total, cfg.warmup)
            output = net(batch)
            loss = task.loss(output, target).sum() * (ctx.world_size / gcount)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.clip)
            opt.step()
            state["step"] = step + 1
            state["nets_seen"] += gcount
            state["seconds"] = time.perf_counter() - t_start
            shown = loss.detach()
            if progress and ctx.distributed:  # every rank takes part (progress is the same on all of them)
                shown = shown.clone()
                torch.distributed.all_reduce(shown)
            bar.update(1)
            # each rank's loss is its share of the global batch's sum × world size / global batch size, so
            # the sum over ranks / world size is the global batch's mean per-net loss
            bar.set_postfix(epoch=epoch + 1, loss=f"{float(shown) / ctx.world_size:.4g}",
                            lr=f"{opt.param_groups[0]['lr']:.2e}",
                            **({f"val_{task.metric}": f"{state['best_metric']:.4f}"}
                               if state["best_metric"] is not None else {}))
            if state["step"] % cfg.checkpoint_every == 0:
                save()
            if crash_after is not None and state["step"] >= crash_after:
                bar.close()
                raise _SimulatedCrash(state["step"])
        # end of epoch: validation, model selection, early stopping (identical on every rank)
        val = evaluate_model(module, zoo, task, splits["val"], batch_size=cfg.eval_batch_size, device=ctx.device)
        module.train()
        score = val[task.metric]
        state["history"].append({"epoch": epoch + 1, "step": state["step"], **{f"val_{k}": v for k, v in val.items()}})
        if task.better(score, state["best_metric"]):
            state.update(best_metric=score, best_epoch=epoch + 1, bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["done"] = True
        state["seconds"] = time.perf_counter() - t_start
        save()
    bar.close()
    seconds = state["seconds"]
    module.load_state_dict(best_state)
    metrics = {split: evaluate_model(module, zoo, task, splits[split], batch_size=cfg.eval_batch_size,
                                     device=ctx.device) if split == "val" or evaluate_test else None
               for split in ("val", "test")}
    result = _result(cfg, task, zoo, splits, metrics, state["best_epoch"], state["history"], state["step"],
                     params, state["nets_seen"], seconds, ctx)
    if ctx.is_main:
        atomic_torch_save({"config": cfg.to_dict(), "model": best_state}, out / "model.pt")
        atomic_write_json(out / "metrics.json", result)
    ctx.barrier()
    return result


class _SimulatedCrash(RuntimeError):
    """Raised by ``train(_crash_after_step=k)`` to simulate a process killed after step k (tests only)."""

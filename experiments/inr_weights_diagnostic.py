"""Diagnostic for issue 19 (INR part): is the class linearly readable from the weights once the random
initialisation each INR started from is known?

digits-siren fits every INR from its own random init (Sitzmann et al. 2020), 100 Adam steps, to ~57 dB PSNR
(16×16 images, 1,185 parameters: an over-parameterised interpolator that stays near its init). The init is not
stored in the zoo, but it is reproducible: this script regenerates it exactly as ``_build_siren.py`` draws it
(per-chunk generator, same order and bounds) and fits logistic regression (standardised, C=0.1 as in
experiments/inr_classification.py) on the training INRs of the ``single`` view (copy 0 of each image), to
features: the final weights θ (what every metanetwork sees), the init θ₀, and the update θ − θ₀. Selection:
none (one fixed model); val and test accuracy reported.

    python experiments/inr_weights_diagnostic.py --out experiments/results/inr_classification_weights/diagnostic.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from inr_classification import training_views  # noqa: E402


def init_params(zoo, arch) -> np.ndarray:
    """[len(zoo), P] the init of every INR (``monomial_gmn.data.siren_init``, the builder's own draw)."""
    from monomial_gmn.data import siren_init

    cfg = zoo.meta["config"]
    cs, seed, nets, w0 = int(cfg["chunk_size"]), int(cfg["seed"]), int(cfg["nets"]), float(cfg["options"]["w0"])
    out = np.zeros((nets, sum(math.prod(s) for _, s, _ in arch.param_shapes)), dtype=np.float32)
    for c in range(math.ceil(nets / cs)):
        start, end = c * cs, min(c * cs + cs, nets)
        params = siren_init(arch, end - start, w0, seed, c)
        out[start:end] = arch.flatten_params(params).numpy()
    return out


def fit_shared_init(zoo, arch, images: np.ndarray, init: dict, steps: int, lr: float) -> np.ndarray:
    """[n, P] INRs fitted to ``images`` exactly as data/_build_siren.py fits them (full-batch Adam, MSE on the
    pixel grid), except that every INR starts from the same ``init`` (dict of [P...] tensors)."""
    from monomial_gmn.data import siren_grid
    from monomial_gmn.graph import stacked_forward

    g, res = len(images), images.shape[-1]
    params = {n: t.unsqueeze(0).repeat(g, *([1] * t.dim())).clone() for n, t in init.items()}
    coords, target = siren_grid(res), torch.from_numpy(images.reshape(g, -1, 1)).float()
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    b1, b2 = 0.9, 0.999
    for t in range(1, steps + 1):
        leaves = {n: p.requires_grad_(True) for n, p in params.items()}
        ((stacked_forward(arch, leaves, coords) - target) ** 2).mean(dim=(1, 2)).sum().backward()
        with torch.no_grad():
            for n, p in leaves.items():
                m[n] = b1 * m[n] + (1 - b1) * p.grad
                v[n] = b2 * v[n] + (1 - b2) * p.grad * p.grad
                params[n] = (p - lr * (m[n] / (1 - b1 ** t)) / ((v[n] / (1 - b2 ** t)).sqrt() + 1e-8)).detach()
    return arch.flatten_params(params).numpy()


def train_shared(view, arch, theta_s: np.ndarray, epochs: int, model: str = "monomial",
                 lr: float = 1e-3) -> dict:
    """A weight-space model (defaults, hidden 32, 3 layers, seed 0) on the shared-init INRs (same images,
    splits and labels as ``view``); train accuracy of the val-selected weights for diagnosis."""
    from monomial_gmn.train import evaluate_model, make_task
    from monomial_gmn.train import build_backbone
    from monomial_gmn.data import Zoo
    from monomial_gmn.train import TrainConfig, train

    params = {arch.name: theta_s.astype(np.float32)}
    zoo = Zoo(dict(view.archs), params, np.arange(len(view)), dict(view.columns), view.images, dict(view.meta),
              view.task_kind)
    out = ROOT / "runs" / "experiments" / "inr_weights" / (f"shared-init-{model}-e{epochs}-s0"
                                                           + (f"-lr{lr:g}" if lr != 1e-3 else ""))
    cfg = TrainConfig(zoo=str(ROOT / "zoos" / "digits-siren-3594-c2-r16"), task="inr-classification",
                      model=model, out=str(out), epochs=epochs, seed=0, lr=lr)
    r = train(cfg, zoo=zoo, progress=False, resume=True)
    task = make_task("inr-classification")
    task.setup(zoo)
    module = task.wrap(build_backbone(cfg, task, zoo), zoo)
    module.load_state_dict(torch.load(out / "model.pt", weights_only=False)["model"])
    train_acc = evaluate_model(module, zoo, task, np.asarray(zoo.split(0)["train"]))["accuracy"]
    return {"model": f"{model} (shared-init INRs)", "epochs": epochs, "lr": lr, "best_epoch": r["best_epoch"],
            "train": train_acc, "val": r["val"]["accuracy"], "test": r["test"]["accuracy"]}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--zoo", default=str(ROOT / "zoos" / "digits-siren-3594-c2-r16"))
    p.add_argument("--out", default="")
    p.add_argument("--train-monomial", type=int, default=0, metavar="EPOCHS",
                   help="also train the plain monomial model and gmn (defaults, hidden 32, 3 layers) on the "
                        "shared-init INRs for this many epochs (seed 0; val-selected epoch)")
    p.add_argument("--lr", type=float, default=1e-3, help="with --train-monomial: AdamW learning rate")
    p.add_argument("--models", default="monomial,gmn", help="with --train-monomial: which models")
    a = p.parse_args()
    torch.set_num_threads(1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from monomial_gmn.data import zoo_digest
    from monomial_gmn.train import open_zoo

    zoo = open_zoo(a.zoo)
    arch = next(iter(zoo.archs.values()))
    view = training_views(zoo)["single"]
    theta = view.params[arch.name][view.net_row].astype(np.float64)
    theta0 = init_params(zoo, arch)[view.columns["net_index"]].astype(np.float64)
    # sanity: the update is small next to the init for the first layer (so the init was reproduced)
    rel = float(np.abs(theta[:, :64] - theta0[:, :64]).max())
    y = view.columns["label"]
    sp = view.split(0)
    res = {"zoo": a.zoo, "zoo_digest": zoo_digest(zoo), "max_first_layer_update": rel, "rows": []}
    for name, x in (("final weights θ", theta), ("init θ0", theta0), ("update θ − θ0", theta - theta0)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(x[sp["train"]],
                                                                                          y[sp["train"]])
        row = {"features": name, **{k: float(clf.score(x[sp[k]], y[sp[k]])) for k in ("train", "val", "test")}}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
    print("max first-layer |θ − θ0|:", rel)
    # the same images, every INR fitted from ONE shared init (INR 0's): a common frame for all weights
    cfg = zoo.meta["config"]["options"]
    shared = {}
    for n, shape, off in arch.param_shapes:
        shared[n] = torch.from_numpy(theta0[0, off:off + math.prod(shape)].reshape(shape)).float()
    theta_s = fit_shared_init(zoo, arch, view.images, shared, int(cfg["steps"]), float(cfg["lr"])).astype(np.float64)
    for name, x in (("shared init: final weights θ", theta_s),):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(x[sp["train"]],
                                                                                          y[sp["train"]])
        row = {"features": name, **{k: float(clf.score(x[sp[k]], y[sp[k]])) for k in ("train", "val", "test")}}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
    if a.train_monomial:
        res["shared_init_models"] = [train_shared(view, arch, theta_s, a.train_monomial, m, a.lr)
                                     for m in a.models.split(",")]
        for r in res["shared_init_models"]:
            print(json.dumps(r), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

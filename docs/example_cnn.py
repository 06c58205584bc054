"""The README's example CNN, trained for a few seconds on scikit-learn's 8×8 digits, saved as a state dict.

    PYTHONPATH=docs .venv/bin/python -m example_cnn /tmp/example_cnn.pt
    PYTHONPATH=docs .venv/bin/monomial-gmn convert /tmp/example_cnn.pt --arch example_cnn:make_cnn \\
        --draw docs/graph.png
"""

from __future__ import annotations

import sys

import torch
from torch import nn


def make_cnn() -> nn.Sequential:
    """Conv2d(1,16,3,stride=2) → ReLU → Conv2d(16,16,3) → Tanh → global average pool → Linear(16,10)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.Tanh(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def train(steps: int = 150, seed: int = 0) -> tuple[nn.Sequential, float]:
    """Full-batch Adam on 1,500 digits; returns the net and its accuracy on the other 297."""
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    net = make_cnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[:1500]), y[:1500]).backward()
        opt.step()
    with torch.no_grad():
        acc = float((net(x[1500:]).argmax(1) == y[1500:]).float().mean())
    return net.eval(), acc


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "example_cnn.pt"
    net, acc = train()
    torch.save(net.state_dict(), out)
    print(f"wrote {out} (held-out digits accuracy {acc:.3f})")

"""Default run settings, in one torch-free place: ``TrainConfig``'s field defaults and the CLI's help read them.

Chosen by validation Kendall τ on a 2,048-net digits-cnn zoo (experiments/results/model_selection/): width 64,
30 epochs at lr 3e-3 lift the canonical-design MonomialGMN from 0.729 to 0.785 (ReLU) and 0.730 to 0.805 (tanh)
over width 32, 10 epochs at lr 1e-3, and GMN from 0.740 to 0.779 (ReLU), so the defaults are shared by every
SGD model (a user running ``compare`` without ``--tune`` gives every model the same settings).
"""

TRAIN_DEFAULTS: dict = {
    "epochs": 30,
    "batch_size": 32,
    "lr": 3e-3,
    "weight_decay": 1e-2,
    "hidden_dim": 64,
    "num_layers": 3,
}

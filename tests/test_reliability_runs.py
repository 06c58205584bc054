"""Runs that stay tied to their zoo and their model (issue 21): zoo digests, resolved paths, saved trees and
probe architectures, option handling, clear one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from monomial_gmn.data import Zoo, load_zoo, save_zoo, zoo_digest

from test_train_zoos import make_cnn_zoo


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cnn_zoo(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "zoo"
    make_cnn_zoo(path, n=48)
    return path


# ------------------------------------------------------------------------------------------ zoo digest
def test_zoo_digest_is_a_content_fingerprint(cnn_zoo, tmp_path):
    zoo = load_zoo(cnn_zoo, step=None)
    d = zoo_digest(cnn_zoo)
    assert len(d) == 64 and int(d, 16) >= 0
    assert zoo_digest(str(cnn_zoo)) == d == zoo_digest(zoo)          # path or Zoo, same networks
    shutil.copytree(cnn_zoo, tmp_path / "copy")
    assert zoo_digest(tmp_path / "copy") == d                         # not the path: the content
    assert zoo_digest(zoo.subset(np.arange(10))) != d                 # other networks
    assert zoo_digest(zoo.subset(np.arange(len(zoo))[::-1])) != d     # other order
    # one weight, one metadata value changed
    name = next(iter(zoo.archs))
    params = {k: np.array(v) for k, v in zoo.params.items()}
    params[name][0, 0] += 1e-3
    changed = Zoo(zoo.archs, params, zoo.net_row, zoo.columns, zoo.images, zoo.meta, zoo.task_kind)
    assert zoo_digest(changed) != d
    cols = {k: np.array(v) for k, v in zoo.columns.items()}
    cols["test_accuracy"][3] += 0.5
    assert zoo_digest(Zoo(zoo.archs, zoo.params, zoo.net_row, cols, zoo.images, zoo.meta, zoo.task_kind)) != d
    save_zoo(changed, tmp_path / "changed")
    assert zoo_digest(tmp_path / "changed") == zoo_digest(changed)
    with pytest.raises(TypeError, match="Zoo or a path"):
        zoo_digest(3)

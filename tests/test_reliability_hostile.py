"""Hostile inputs: corrupted zoo files, malformed state dicts, modules the converter must refuse, CLI abuse.

Every input is built synthetically in ``tmp_path``; each test pins one failure found by probing (a traceback, a
raw Python error, or a silently wrong result) to the clear refusal or exact result that replaced it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn import ZooFormatError
from monomial_gmn.cli import main as cli_main
from monomial_gmn.data import load_zoo, read_siren_dir, save_zoo

# ---------------------------------------------------------------------------------------------- Small CNN Zoo
# a tiny published-format zoo: conv 3x3 1->2, GAP, dense 2->3 (TF layout), 2 nets x 2 checkpoints
_LAYOUT = [("sequential/conv2d/kernel:0", 0, 18, "(3, 3, 1, 2)"), ("sequential/conv2d/bias:0", 18, 20, "(2,)"),
           ("sequential/dense/kernel:0", 20, 26, "(2, 3)"), ("sequential/dense/bias:0", 26, 29, "(3,)")]
_WIDTH = 29


def _layout_text(rows=_LAYOUT) -> str:
    return "varname,start_idx,end_idx,size,shape\n" + "".join(f'{v},{s},{e},{e - s},"{sh}"\n' for v, s, e, sh in rows)


def _metrics_text(steps=(0, 5, 0, 5), nets=("n0", "n0", "n1", "n1"), modeldir=True) -> str:
    head = "config.activation," + ("modeldir," if modeldir else "") + "step,test_accuracy\n"
    return head + "".join(f"relu,{n + ',' if modeldir else ''}{s},0.{i + 1}\n"
                          for i, (n, s) in enumerate(zip(nets, steps)))


def small_cnn_zoo(path: Path, weights=None, layout: str | None = None, metrics: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(0).normal(size=(4, _WIDTH)).astype(np.float32) if weights is None else weights
    np.save(path / "weights.npy", w)
    (path / "layout.csv").write_text(_layout_text() if layout is None else layout)
    (path / "metrics.csv.gz").write_bytes(gzip.compress((_metrics_text() if metrics is None else metrics).encode()))
    return path


def test_synthetic_small_cnn_zoo_loads(tmp_path):
    zoo = load_zoo(small_cnn_zoo(tmp_path / "z"))
    assert len(zoo) == 2 and zoo.columns["step"].tolist() == [5, 5]


def test_integer_weights_npy_is_a_format_error_not_a_typeerror(tmp_path):
    p = small_cnn_zoo(tmp_path / "z", weights=np.zeros((4, _WIDTH), dtype=np.int32))
    with pytest.raises(ZooFormatError, match=r"weights\.npy: expected a floating array, got dtype int32"):
        load_zoo(p)


def test_layout_with_a_header_only_is_refused(tmp_path):
    p = small_cnn_zoo(tmp_path / "z", layout="varname,start_idx,end_idx,size,shape\n")
    with pytest.raises(ZooFormatError, match="lists no variables"):
        load_zoo(p)


def test_layout_with_a_non_integer_size_is_refused(tmp_path):
    p = small_cnn_zoo(tmp_path / "z", layout=_layout_text().replace(",18,18,", ",18,abc,"))
    with pytest.raises(ZooFormatError, match=r"row 2 \(sequential/conv2d/kernel:0\): size 'abc'"):
        load_zoo(p)


def test_layout_leaving_weight_columns_unread_is_refused(tmp_path):
    # dropping the conv bias row used to load a bias-free network and silently ignore columns 18..19
    p = small_cnn_zoo(tmp_path / "z", layout=_layout_text([r for r in _LAYOUT if "conv2d/bias" not in r[0]]))
    with pytest.raises(ZooFormatError, match=r"weight columns 18\.\.19 belong to no variable"):
        load_zoo(p)


def test_weights_with_zero_rows_are_refused(tmp_path):
    p = small_cnn_zoo(tmp_path / "z", weights=np.zeros((0, _WIDTH), np.float32), metrics=_metrics_text((), ()))
    with pytest.raises(ZooFormatError, match=r"holds no networks \(0 rows\)"):
        load_zoo(p)


def test_fractional_step_is_not_truncated(tmp_path):
    p = small_cnn_zoo(tmp_path / "z", metrics=_metrics_text((0, 5.5, 0, 5)))
    with pytest.raises(ZooFormatError, match="column 'step' is not an integer"):
        load_zoo(p)


def test_final_checkpoint_without_modeldir_is_refused_not_guessed(tmp_path):
    # without modeldir every row used to count as its own network, so step 0 checkpoints came back as "final"
    p = small_cnn_zoo(tmp_path / "z", metrics=_metrics_text(modeldir=False))
    with pytest.raises(ZooFormatError, match="no 'modeldir' column"):
        load_zoo(p)
    assert len(load_zoo(p, step=None)) == 4 and len(load_zoo(p, step=5)) == 2


@pytest.mark.parametrize("options, match", [
    ({"conv_stride": 0}, "conv_stride must be a positive integer"),
    ({"conv_stride": -2}, "conv_stride must be a positive integer"),
    ({"padding": "same"}, "padding must be 'tf_same' or 'symmetric', not 'same'"),
    ({"input_shape": "abc"}, "input_shape must be a list of positive integers"),
])
def test_small_cnn_reader_options_are_checked(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        load_zoo(small_cnn_zoo(tmp_path / "z"), **options)


def test_input_shape_must_fit_the_first_layer(tmp_path):
    p = small_cnn_zoo(tmp_path / "z")
    with pytest.raises(ZooFormatError, match=r"input_shape \[3, 8, 8\] does not fit the first layer"):
        load_zoo(p, input_shape=[3, 8, 8])
    assert load_zoo(p, input_shape=[1, 8, 8]).archs["smallcnn-relu"].input_shape == [1, 8, 8]


# ---------------------------------------------------------------------------------------------- our own format
@pytest.fixture
def own_zoo(tmp_path) -> Path:
    return save_zoo(load_zoo(small_cnn_zoo(tmp_path / "src"), step=None), tmp_path / "own")


def _tamper(path: Path, fn) -> Path:
    head = json.loads((path / "zoo.json").read_text())
    fn(head)
    (path / "zoo.json").write_text(json.dumps(head))
    return path


def _conv_opts(h):
    return h["architectures"][0]["layers"][0][1]


@pytest.mark.parametrize("fn, match", [
    (lambda h: h.update(count=True), "field 'count' is missing or not a int"),
    (lambda h: h.update(count=-1), r"field 'count' is negative \(-1\)"),
    (lambda h: h["architectures"][0].update(count=-4), "has a bad count -4"),
    (lambda h: h.update(meta=[1, 2]), "field 'meta' must be an object, not list"),
    (lambda h: h.update(images="../x.npy"), "field 'images' must be null"),
    (lambda h: h["architectures"].append(dict(h["architectures"][0])), "two architectures are named 'smallcnn-relu'"),
    (lambda h: _conv_opts(h).update(stride=0), r"layer 0 \(conv2d\): 'kernel' and 'stride' must be positive"),
    (lambda h: _conv_opts(h).update(bias="false"), "'bias' must be true or false, not 'false'"),
    (lambda h: _conv_opts(h).update(out=2.7), "'out' must be a positive integer, not 2.7"),
    (lambda h: h["architectures"][0].update(input_shape=[3, 8, 8]), r"input_shape \[3, 8, 8\] does not fit"),
])
def test_tampered_zoo_json_is_refused(own_zoo, fn, match):
    with pytest.raises(ZooFormatError, match=match):
        load_zoo(_tamper(own_zoo, fn), step=None)


@pytest.mark.parametrize("text, match", [("[" * 100_000, "nested too deeply"),
                                         ('{"count": 1' + "0" * 5000 + "}", "Exceeds the limit")])
def test_pathological_zoo_json_is_a_format_error(own_zoo, text, match):
    (own_zoo / "zoo.json").write_text(text)
    with pytest.raises(ZooFormatError, match=r"zoo\.json: not valid JSON \(.*" + match):
        load_zoo(own_zoo)

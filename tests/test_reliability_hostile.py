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
    with pytest.raises(ZooFormatError, match=r"zoo\.json: malformed zoo header \(not valid JSON: .*" + match):
        load_zoo(own_zoo)


# ---------------------------------------------------------------------------------------------- SIREN directories
def _siren_state(widths=(2, 4, 1), seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        out[f"net.{i}.weight"] = torch.randn(b, a, generator=g)
        out[f"net.{i}.bias"] = torch.randn(b, generator=g)
    return out


def _siren_dir(path: Path, states: dict[str, dict], **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, state in states.items():
        torch.save(state, path / name)
    for name, text in files.items():
        (path / name.replace("_", ".")).write_text(text)
    return path


@pytest.mark.parametrize("bad, match", [
    (lambda t: t.to(torch.complex64), "has dtype torch.complex64; expected real floating-point weights"),
    (lambda t: t.to(torch.int64), "has dtype torch.int64"),
    (lambda t: t.to_sparse(), "is a torch.sparse_coo tensor; expected a dense tensor"),
    (lambda t: t[:0], r"has shape \(0, 2\), with no values"),
])
def test_state_dict_tensors_that_are_not_dense_real_weights_are_refused(tmp_path, bad, match):
    # complex weights were cast to float32 (imaginary part dropped), sparse ones raised a raw RuntimeError
    state = _siren_state()
    state["net.0.weight"] = bad(state["net.0.weight"])
    with pytest.raises(ZooFormatError, match=match):
        read_siren_dir(_siren_dir(tmp_path / "d", {"net0.pt": state}), progress=False)


def test_architecture_names_of_a_siren_dir_never_collide(tmp_path):
    # widths (2,4,1,1) are named 'siren-2-4-1-1'; a second architecture (2,4,1) got the same name with its
    # '-1' suffix and net0 silently took net1's weights
    a, b = _siren_state((2, 4, 1, 1), 0), _siren_state((2, 4, 1), 1)
    zoo = read_siren_dir(_siren_dir(tmp_path / "d", {"net0.pt": a, "net1.pt": b}), progress=False)
    assert len(set(zoo.columns["arch"].tolist())) == 2
    for i, state in enumerate((a, b)):
        arch = zoo.archs[zoo.columns["arch"][i]]
        flat = torch.from_numpy(np.asarray(zoo.params[arch.name][zoo.net_row[i]]))
        assert torch.equal(flat, torch.cat([t.reshape(-1) for t in state.values()]))  # weight, bias, ...


@pytest.mark.parametrize("labels, match", [
    ('{"net0.pt": 1.7, "net1.pt": 2}', "labels must be integers; 'net0.pt' has 1.7"),
    ('{"net0.pt": true, "net1.pt": 2}', "labels must be integers; 'net0.pt' has True"),
    ("[" * 100_000, r"not valid JSON: nested too deeply"),
])
def test_labels_json_must_hold_integers(tmp_path, labels, match):
    d = _siren_dir(tmp_path / "d", {"net0.pt": _siren_state(), "net1.pt": _siren_state(seed=1)}, labels_json=labels)
    with pytest.raises(ZooFormatError, match=match):
        read_siren_dir(d, progress=False)


def test_float_labels_npy_is_a_format_error(tmp_path):
    d = _siren_dir(tmp_path / "d", {"net0.pt": _siren_state()})
    np.save(d / "labels.npy", np.array([0.5]))
    with pytest.raises(ZooFormatError, match=r"labels\.npy: expected an integer array, got dtype float64"):
        read_siren_dir(d, progress=False)


@pytest.mark.parametrize("w0", [0, float("nan"), "30"])
def test_siren_frequency_is_checked(tmp_path, w0):
    with pytest.raises(ValueError, match="w0 must be a positive finite number"):
        read_siren_dir(_siren_dir(tmp_path / "d", {"net0.pt": _siren_state()}), w0=w0)


# ---------------------------------------------------------------------------------------------- conversion
def test_layer_placed_twice_in_a_sequential_is_refused():
    # named_children() skips the second position of a module, so this converted as Linear, ReLU, ReLU, Linear
    # (one hidden layer fewer) and verify_symmetry failed on the claimed group
    lin = nn.Linear(6, 6)
    net = nn.Sequential(lin, nn.ReLU(), lin, nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(mg.UnsupportedModuleError, match=r"'2\.weight' is the same tensor as '0\.weight'"):
        mg.to_graph(net)


def test_weight_shared_between_two_modules_is_refused_by_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.d = nn.Linear(5, 5), nn.Linear(5, 5)
            self.d.weight = self.c.weight

        def forward(self, x):
            return self.d(torch.relu(self.c(x)))

    # was a GraphMismatchError "the module has no parameter 'd.weight'"
    with pytest.raises(mg.UnsupportedModuleError, match=r"module 'd' of type Linear: its parameter 'd\.weight'"):
        mg.to_graph(Tied())


def test_activation_placed_twice_in_a_sequential_keeps_its_symmetry():
    # the second position of the one ReLU was skipped, so its neurons claimed any non-zero scale (sign flips
    # through a ReLU): a wrong group
    torch.manual_seed(0)
    relu = nn.ReLU()
    net = nn.Sequential(nn.Linear(6, 5), relu, nn.Linear(5, 5), relu, nn.Linear(5, 2)).double()
    graph = mg.to_graph(net)
    assert graph.summary()["symmetry"] == {"fixed": 8, "positive_scale": 10}
    x = torch.randn(16, 6, dtype=torch.float64)
    assert torch.equal(mg.to_module(graph, net)(x), net(x))
    t = mg.sample_transform(graph, max_scale=10.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(mg.to_module(t(graph), net)(x), net(x), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- command line
def _cli(argv, capsys) -> tuple[int, str]:
    try:
        code = cli_main(argv)
    except SystemExit as exc:  # argparse errors leave through SystemExit
        code = exc.code
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv, needle", [
    ([], "the following arguments are required: COMMAND"),
    (["zoo", "build", "digits-foo", "--out", "x"], "invalid choice: 'digits-foo'"),
    (["zoo", "info"], "the following arguments are required: path"),
    (["convert"], "the following arguments are required: model, --arch"),
    (["bench", "--nope"], "unrecognized arguments: --nope"),
])
def test_every_argparse_error_is_one_line(argv, needle, capsys):
    code, err = _cli(argv, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "usage:" not in err


@pytest.mark.parametrize("option, needle", [
    ("epochs=-1", "option epochs=-1 must be a range [low, high] of integers >= 1"),   # was a TypeError traceback
    ("lr_range=[-1,2]", "option lr_range=[-1, 2] must be a range [low, high] of positive numbers"),
    ('activations=["foo"]', "unknown: ['foo']"),
    ("channels=2.5", "option channels=2.5 must be a positive integer"),
])
def test_zoo_build_options_are_checked_before_any_work(tmp_path, option, needle, capsys):
    code, err = _cli(["zoo", "build", "digits-cnn", "--out", str(tmp_path / "z"), "--nets", "2", "--option", option,
                      "--quiet"], capsys)
    assert (code, err.count("\n")) == (2, 1) and needle in err
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("flag, value, needle", [("--workers", "0", "workers must be at least 1, got 0"),
                                                 ("--seed", "-1", "seed must be an integer >= 0, got -1"),
                                                 ("--chunk-size", "0", "chunk_size must be at least 1, got 0")])
def test_zoo_build_counts_are_checked(tmp_path, flag, value, needle, capsys):
    code, err = _cli(["zoo", "build", "digits-cnn", "--out", str(tmp_path / "z"), "--nets", "2", flag, value],
                     capsys)
    assert code == 2 and needle in err


def _state_dict_file(tmp_path: Path, change=None) -> Path:
    state = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict()
    if change:
        state["0.weight"] = change(state["0.weight"])
    torch.save(state, tmp_path / "net.pt")
    return tmp_path / "net.pt"


@pytest.mark.parametrize("change, needle", [
    (lambda t: t.to(torch.complex64), "'0.weight' has dtype torch.complex64; a complex value cannot be loaded"),
    (lambda t: t.to_sparse(), "'0.weight' is a torch.sparse_coo tensor; expected a dense tensor"),
])
def test_convert_refuses_complex_and_sparse_state_dicts(tmp_path, change, needle, capsys):
    # complex: converted silently without the imaginary part; sparse: a multi-line load_state_dict error
    model = _state_dict_file(tmp_path, change)
    code, err = _cli(["convert", str(model), "--arch", "torch.nn:Sequential"], capsys)
    assert (code, err.count("\n")) == (2, 1) and needle in err


@pytest.mark.parametrize("out, needle", [
    ("afile/g.pt", "cannot write {t}/afile/g.pt: {t}/afile is a file, not a directory"),   # was a traceback
    ("afile/a/b.png", "cannot write {t}/afile/a/b.png: {t}/afile is a file, not a directory"),
    (".", "cannot write {t}: it is a directory"),
])
def test_unwritable_output_paths_are_one_line(tmp_path, out, needle, capsys):
    (tmp_path / "afile").write_text("x")
    torch.save(nn.Linear(4, 3).state_dict(), tmp_path / "lin.pt")
    model = tmp_path / "lin.pt"
    flag = "--draw" if out.endswith(".png") else "--out"
    target = tmp_path / out if out != "." else tmp_path
    code, err = _cli(["convert", str(model), "--arch", "torch.nn:Linear", "--arch-kwargs",
                      '{"in_features": 4, "out_features": 3}', flag, str(target)], capsys)
    assert code == 2 and err.count("\n") == 1 and needle.format(t=tmp_path) in err


def test_convert_of_a_bare_linear_round_trips(tmp_path, capsys):
    torch.save(nn.Linear(4, 3).state_dict(), tmp_path / "lin.pt")
    code, _ = _cli(["convert", str(tmp_path / "lin.pt"), "--arch", "torch.nn:Linear", "--arch-kwargs",
                    '{"in_features": 4, "out_features": 3}', "--out", str(tmp_path / "g" / "graph.pt")], capsys)
    saved = torch.load(tmp_path / "g" / "graph.pt", weights_only=True)
    assert code == 0 and saved["edge_attr"].shape == (12, 1)


@pytest.mark.parametrize("cmd", ["train", "compare"])
def test_out_below_a_file_is_refused_before_training(tmp_path, cmd, capsys):
    p = small_cnn_zoo(tmp_path / "z")
    (tmp_path / "afile").write_text("x")
    argv = [cmd, "--zoo", str(p), "--task", "generalization", "--out", str(tmp_path / "afile" / "run"), "--quiet"]
    argv += ["--model", "statnn"] if cmd == "train" else ["--models", "statnn"]
    code, err = _cli(argv, capsys)
    assert code == 2 and f"--out {tmp_path}/afile/run: {tmp_path}/afile is a file, not a directory" in err


def test_compare_tune_space_without_tune_is_refused(tmp_path, capsys):
    # it was silently ignored: the run used the flags' configuration
    code, err = _cli(["compare", "--zoo", str(small_cnn_zoo(tmp_path / "z")), "--task", "generalization",
                      "--models", "statnn", "--out", str(tmp_path / "c"), "--tune-space", '{"lr": [0.1]}'], capsys)
    assert code == 2 and "--tune-space narrows the search of --tune N" in err
    assert not (tmp_path / "c").exists()


def test_metrics_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    # a BOM (spreadsheet export) glued itself to 'config.activation': "missing column 'activation'"
    p = small_cnn_zoo(tmp_path / "z")
    (p / "metrics.csv.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + _metrics_text().encode()))
    assert load_zoo(p).columns["activation"].tolist() == ["relu", "relu"]


@pytest.mark.parametrize("record", ["[" * 100_000, '{"config": 5}', '{"config": {"kind": "digits-cnn"}}'])
def test_merge_refuses_a_malformed_build_record(tmp_path, record, capsys):
    for shard in ("s0", "s1"):
        (tmp_path / shard).mkdir()
        (tmp_path / shard / "build.json").write_text(record)
    code, err = _cli(["zoo", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")],
                     capsys)
    assert code == 2 and f"{tmp_path}/s0/build.json: malformed build record" in err


# ---------------------------------------------------------------------------------------------- Zoo API
@pytest.mark.parametrize("indices, match", [([1.5], "got dtype float64 \\(first: 1.5\\)"),
                                            (["a"], "got dtype <U1 \\(first: 'a'\\)")])
def test_zoo_indices_must_be_integers(tmp_path, indices, match):
    # 1.5 was truncated to network 1; a string raised int()'s ValueError
    zoo = load_zoo(small_cnn_zoo(tmp_path / "z"))
    with pytest.raises(IndexError, match="zoo indices must be integers or a boolean mask, " + match):
        zoo.batch(indices)
    assert zoo.batch(np.array([1.0, 0.0])).num_graphs == 2 and zoo.subset([-1]).columns["test_accuracy"][0] == 0.4


@pytest.mark.parametrize("fractions", [(0.5, -0.1, 0.6), (0.0, 0.5, 0.5), (0.7, 0.3)])
def test_split_fractions_are_checked(tmp_path, fractions):
    with pytest.raises(ValueError, match="fractions must be three finite numbers >= 0"):
        load_zoo(small_cnn_zoo(tmp_path / "z")).split(fractions=fractions)


def test_random_monomial_refuses_to_overflow_a_graph(tmp_path):
    # level 100 on a float32 batch silently gave inf/NaN weights
    batch = load_zoo(small_cnn_zoo(tmp_path / "z")).batch([0, 1])
    with pytest.raises(mg.NonFiniteWeightsError, match=r"RandomMonomial\(scale=1e\+100\) overflowed"):
        mg.data.RandomMonomial(level=100).forward(batch, torch.Generator().manual_seed(0))
    out = mg.data.RandomMonomial(level=3).forward(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(out.edge_attr).all() and not torch.equal(out.edge_attr, batch.edge_attr)

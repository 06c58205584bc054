"""Issue 21 regressions on the conversion side: silent wrong graphs, CLI crashes and rough messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _cli_helpers import one_line_error as _one_line_error
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.cli import main




# ---------------------------------------------------------------------------------------------- package
def test_testing_subpackage_reachable_after_plain_import():
    code = ("import monomial_gmn as mg, sys; assert 'monomial_gmn.testing' not in sys.modules; "
            "print(mg.testing.assert_equivariant.__name__, mg.to_graph.__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["assert_equivariant", "to_graph", "True"]


def test_package_import_and_cli_help_do_not_import_torch():
    code = ("import sys, monomial_gmn\nfrom monomial_gmn.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'torch_geometric') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_lazy_names_match_all():
    for name in mg.__all__:
        assert getattr(mg, name) is not None, name
    assert set(mg.__all__) <= set(dir(mg))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mg.nope  # noqa: B018


# ---------------------------------------------------------------------------------------------- CLI convert
class _FakePipe:
    """A stdout whose reader has gone away."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def _lin(tmp_path, name="lin.pt"):
    path = tmp_path / name
    torch.save(nn.Linear(3, 2).state_dict(), path)
    return path


LIN = ["--arch", "torch.nn:Linear", "--arch-kwargs", '{"in_features": 3, "out_features": 2}']


def test_broken_pipe_ends_quietly(tmp_path, monkeypatch, capsys):
    model = _lin(tmp_path)
    monkeypatch.setattr(sys, "stdout", _FakePipe())
    assert main(["convert", str(model), *LIN]) == 141
    assert capsys.readouterr().err == ""


def test_convert_missing_file_checked_before_the_architecture(tmp_path, capsys):
    err = _one_line_error(capsys, ["convert", str(tmp_path / "nope.pt"), "--arch", "no_such_pkg_xyz:make"])
    assert "nope.pt: no such file" in err


@pytest.mark.parametrize("kwargs, needle", [
    ('{"in_features": 3}', "TypeError"),                       # a required argument missing
    ('{"in_features": 3, "out_features": 2, "colour": 1}', "colour"),  # an unknown one
    ('{"in_features": -3, "out_features": 2}', "RuntimeError"),  # the factory itself raises
    ('[1, 2]', "must be a JSON object"),
    ('{"in_features": ', "not valid JSON"),
])
def test_convert_bad_factory_call_is_one_line(tmp_path, capsys, kwargs, needle):
    err = _one_line_error(capsys, ["convert", str(_lin(tmp_path)), "--arch", "torch.nn:Linear",
                                   "--arch-kwargs", kwargs])
    assert needle in err


def test_convert_finds_arch_module_in_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "issue21_cwd_arch.py").write_text(
        "import torch.nn as nn\n\ndef make(width=4):\n    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), "
        "nn.Linear(width, 1))\n\ndef broken():\n    raise ValueError('bad width')\n")
    torch.save(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)).state_dict(), tmp_path / "net.pt")
    try:
        assert main(["convert", "net.pt", "--arch", "issue21_cwd_arch:make"]) == 0
        assert '"nodes": 7' in capsys.readouterr().out
        err = _one_line_error(capsys, ["convert", "net.pt", "--arch", "issue21_cwd_arch:broken"])
        assert "ValueError: bad width" in err
    finally:
        sys.modules.pop("issue21_cwd_arch", None)
    err = _one_line_error(capsys, ["convert", "net.pt", "--arch", "issue21_no_such_module:make"])
    assert "no module named 'issue21_no_such_module'" in err and "current directory" in err


def test_convert_state_dict_mismatch_names_the_keys(tmp_path, capsys):
    path = tmp_path / "partial.pt"
    torch.save({"weight": torch.zeros(2, 3)}, path)
    err = _one_line_error(capsys, ["convert", str(path), *LIN])
    assert "missing key(s) 'bias'" in err
    many = tmp_path / "many.pt"
    torch.save({f"extra{i}": torch.zeros(1) for i in range(9)} | nn.Linear(3, 2).state_dict(), many)
    err = _one_line_error(capsys, ["convert", str(many), *LIN])
    assert "unexpected key(s) 'extra0'" in err and "and 4 more" in err
    wrong = tmp_path / "wrong.pt"
    torch.save(nn.Linear(4, 2).state_dict(), wrong)
    err = _one_line_error(capsys, ["convert", str(wrong), *LIN])
    assert "shape mismatch: 'weight' has shape (2, 4), the model expects (2, 3)" in err


def test_convert_pickled_module_never_suggests_weights_only_false(tmp_path, capsys):
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(3, 2), path)  # a whole pickled module, not a state dict
    err = _one_line_error(capsys, ["convert", str(path), *LIN])
    assert "pickled Python objects" in err and "torch.nn.modules.linear.Linear" in err
    assert "weights_only=False" not in err and "\x1b" not in err and "will likely succeed" not in err
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert "empty or truncated" in _one_line_error(capsys, ["convert", str(empty), *LIN])


# ---------------------------------------------------------------------------------------------- conversion
class _ScaledMLP(nn.Module):
    def __init__(self, g, vector=False):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(3, 1)
        self.g = nn.Parameter(torch.full((3,) if vector else (), float(g)))

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) * self.g)


def test_scalar_parameter_in_forward_is_refused_like_a_vector():
    for vector in (False, True):
        with pytest.raises(mg.UnsupportedModuleError, match=r"parameter 'g' \((a scalar|3 values)\) is used "
                                                            r"directly in the forward"):
            mg.to_graph(_ScaledMLP(5.0, vector))


def test_scalar_buffer_in_forward_is_a_constant_of_the_architecture():
    class Buffered(_ScaledMLP):
        def __init__(self, g):
            super().__init__(g)
            del self.g
            self.register_buffer("g", torch.tensor(float(g)))

    net = Buffered(5.0)
    graph = mg.to_graph(net)
    assert graph.symmetry_counts() == {"fixed": 3, "positive_scale": 3}
    x = torch.randn(4, 2)
    assert torch.equal(mg.to_module(graph, net)(x), net(x))


def test_learnable_prelu_slope_is_refused():
    net = nn.Sequential(nn.Linear(2, 3), nn.PReLU(), nn.Linear(3, 1))
    for method in ("sequential", "fx"):
        with pytest.raises(mg.UnsupportedModuleError, match=r"'1' of type PReLU: its parameter\(s\) \['weight'\] "
                                                            r"are not carried"):
            mg.to_graph(net, method=method)


def test_to_module_refuses_a_graph_with_other_activations():
    relu = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    tanh = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(mg.GraphMismatchError, match=r"neuron 2 in layer 1 \('0'\), is positive_scale in the graph "
                                                    r"and sign in the template"):
        mg.to_module(mg.to_graph(relu), tanh)
    assert torch.equal(mg.to_module(mg.to_graph(relu), relu)[0].weight, relu[0].weight)


def _bn_net(steps):
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1))
    net[1].num_batches_tracked.fill_(steps)
    return net


def test_to_module_carries_num_batches_tracked():
    graph = mg.to_graph(_bn_net(41))
    assert graph.norm_steps.tolist() == [-1, -1, 41, 41, 41, -1]
    assert int(mg.to_module(graph, _bn_net(0))[1].num_batches_tracked) == 41
    # a group element moves the counts with their neurons; a graph without the field keeps the template's
    moved = mg.sample_transform(graph, generator=torch.Generator().manual_seed(0))(graph)
    assert int(mg.to_module(moved, _bn_net(0))[1].num_batches_tracked) == 41
    del moved.norm_steps
    assert int(mg.to_module(moved, _bn_net(3))[1].num_batches_tracked) == 3
    # batched with a graph that does not record counts (-1 rows), each graph keeps its own
    batch = mg.batch_graphs([graph, moved, mg.to_graph(nn.Sequential(nn.Linear(2, 1)))])
    first, second, _ = batch.to_data_list()
    assert int(mg.to_module(first, _bn_net(0))[1].num_batches_tracked) == 41
    assert int(mg.to_module(second, _bn_net(3))[1].num_batches_tracked) == 3


# ---------------------------------------------------------------------------------------------- group
@pytest.mark.parametrize("bad", [0, 0.5, -2.0, float("nan"), float("inf"), "10"])
def test_sample_transform_names_a_bad_max_scale(bad):
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"max_scale must be a (finite )?number >= 1"):
        mg.sample_transform(net, max_scale=bad)
    with pytest.raises(ValueError, match=r"max_scale must be"):
        mg.MonomialGroup(net).testing_elements(max_scale=bad)


def test_sample_transform_accepts_max_scale_one_and_numpy_numbers():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    g = mg.sample_transform(net, max_scale=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(g.factor, torch.ones_like(g.factor))
    mg.sample_transform(net, max_scale=np.float32(3.0))
    with pytest.raises(ValueError, match=r"scale_range must satisfy 0 < lo <= hi"):
        mg.sample_transform(net, scale_range=(2.0, 1.0))


# ---------------------------------------------------------------------------------------------- SIREN directories
def _siren_sd(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"seq.0.weight": torch.randn(4, 2, generator=g), "seq.0.bias": torch.randn(4, generator=g),
            "seq.1.weight": torch.randn(1, 4, generator=g), "seq.1.bias": torch.randn(1, generator=g)}


def _nfn_layout(root, labels_of_index: list[int]):
    """NFN's SirenDataset layout: randinit_test_<label>s/net<index>.pth, the net index running over all folders."""
    for idx, label in enumerate(labels_of_index):
        d = root / f"randinit_test_{label}s"
        d.mkdir(parents=True, exist_ok=True)
        torch.save(_siren_sd(idx), d / f"net{idx}.pth")
    return root


def _by_file(zoo) -> dict[str, int]:
    return dict(zip(zoo.columns["file"].tolist(), zoo.columns["label"].tolist()))


# labels by net index; 12 nets so that net10/net11 sort between net1 and net2 in plain path order
NFN_LABELS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]


def test_nfn_siren_layout_reads_labels_from_folders(tmp_path):
    zoo = mg.load_zoo(_nfn_layout(tmp_path / "z", NFN_LABELS))
    got = _by_file(zoo)
    assert len(got) == 12
    assert got == {f"randinit_test_{lab}s/net{i}.pth": lab for i, lab in enumerate(NFN_LABELS)}
    # the weights of each row are those of its file
    i = zoo.columns["file"].tolist().index("randinit_test_8s/net11.pth")
    assert torch.equal(zoo.graph(i).x[2:6, 0], _siren_sd(11)["seq.0.bias"])


def test_labels_npy_is_matched_by_net_index_not_path_order(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for idx in range(12):
        torch.save(_siren_sd(idx), root / f"net{idx}.pth")
    np.save(root / "labels.npy", np.asarray(NFN_LABELS))
    assert _by_file(mg.load_zoo(root)) == {f"net{i}.pth": lab for i, lab in enumerate(NFN_LABELS)}
    # the same array handed over as an argument follows the same rule
    zoo = mg.data.read_siren_dir(root, labels=np.asarray(NFN_LABELS), progress=False)
    assert _by_file(zoo) == {f"net{i}.pth": lab for i, lab in enumerate(NFN_LABELS)}
    # beside NFN's folders (path order: folder by folder, not by index) the array still goes by net index
    nfn = _nfn_layout(tmp_path / "nfn", NFN_LABELS)
    np.save(nfn / "labels.npy", np.arange(12) + 20)
    assert _by_file(mg.load_zoo(nfn)) == {f"randinit_test_{lab}s/net{i}.pth": 20 + i
                                          for i, lab in enumerate(NFN_LABELS)}


@pytest.mark.parametrize("case, match", [
    ("duplicate", r"'a/net0.pth' and 'b/net0.pth' both have index 0"),
    ("gap", r"needs indices 0..2 for 3 labels; the files have 3 indices from 0 to 5"),
    ("no-index", r"'b/x.pth' has none"),
    ("folders", r"carry no net index and the files lie in several folders"),
])
def test_ambiguous_labels_array_is_refused(tmp_path, case, match):
    names = {"duplicate": ["a/net0.pth", "a/net1.pth", "b/net0.pth"],
             "gap": ["net0.pth", "net1.pth", "net5.pth"],
             "no-index": ["a/net0.pth", "a/net1.pth", "b/x.pth"],
             "folders": ["a/x.pth", "a/y.pth", "b/z.pth"]}[case]
    for k, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(_siren_sd(k), tmp_path / name)
    np.save(tmp_path / "labels.npy", np.array([0, 1, 2]))
    with pytest.raises(mg.ZooFormatError, match=match) as exc:
        mg.load_zoo(tmp_path)
    assert "labels.csv (file,label)" in str(exc.value)


def test_names_without_numbers_in_one_folder_take_the_array_in_name_order(tmp_path):
    for k, name in enumerate(["b.pth", "a.pth", "c.pth"]):
        torch.save(_siren_sd(k), tmp_path / name)
    np.save(tmp_path / "labels.npy", np.array([7, 8, 9]))
    assert _by_file(mg.load_zoo(tmp_path)) == {"a.pth": 7, "b.pth": 8, "c.pth": 9}


def test_unlabelled_siren_dir_says_there_are_no_labels(tmp_path):
    from monomial_gmn.train._tasks import make_task

    for idx in range(3):
        torch.save(_siren_sd(idx), tmp_path / f"net{idx}.pth")
    zoo = mg.load_zoo(tmp_path)
    assert (zoo.columns["label"] == -1).all()
    with pytest.raises(ValueError, match=r"needs a class label per network, but .* has no labels \(label -1\); "
                                         r"for a directory of SIREN state dicts give labels.csv"):
        make_task("inr-classification").setup(zoo)


# ---------------------------------------------------------------------------------------------- CLI text
def test_demo_help_and_readme_give_the_same_duration():
    import re
    from pathlib import Path

    from monomial_gmn.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    said = re.search(r"It needs about (\d+) minutes on\s+2 cores", readme)
    assert said, "README no longer states the demo's duration"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    demo_help = next(c.help for c in sub._choices_actions if c.dest == "demo")
    assert f"about {said.group(1)} minutes on 2 cores" in demo_help


# ---------------------------------------------------------------------------------------------- zoo messages
SAMPLE = __import__("pathlib").Path(__file__).parent / "data" / "small-cnn-zoo-sample"


def test_zoo_info_unknown_step_names_the_steps_there_are(capsys):
    err = _one_line_error(capsys, ["zoo", "info", str(SAMPLE), "--step", "99"])
    assert "no network has a checkpoint at step 99 (steps there: 0, 86)" in err and "None" not in err
    err = _one_line_error(capsys, ["zoo", "info", str(SAMPLE), "--step", "99", "--activation", "tanh"])
    assert "no tanh network has a checkpoint at step 99" in err


def test_truncated_metrics_csv_counts_rows_not_networks(tmp_path):
    import gzip
    import shutil

    for f in ("weights.npy", "layout.csv"):
        shutil.copy(SAMPLE / f, tmp_path / f)
    lines = gzip.open(SAMPLE / "metrics.csv.gz", "rt").read().splitlines()
    (tmp_path / "metrics.csv").write_text("\n".join(lines[:-5]) + "\n")  # 19 of 24 checkpoint rows
    with pytest.raises(mg.ZooFormatError) as exc:
        mg.load_zoo(tmp_path)
    msg = str(exc.value)
    assert "has 19 rows but" in msg and "weights.npy has 24 (one row per network checkpoint" in msg
    assert "networks" not in msg


def test_pickled_file_in_a_siren_dir_gets_our_message(tmp_path):
    torch.save(_siren_sd(0), tmp_path / "net0.pth")
    torch.save(nn.Linear(2, 1), tmp_path / "net1.pth")  # a whole pickled module
    with pytest.raises(mg.ZooFormatError, match=r"net1.pth: cannot read it as a state dict: it holds pickled "
                                                r"Python objects \(it references torch.nn.modules.linear.Linear\)"
                       ) as exc:
        mg.load_zoo(tmp_path)
    assert "weights_only=False" not in str(exc.value) and "\x1b" not in str(exc.value)


class _Log(__import__("io").StringIO):
    """stdout and stderr redirected to one log file (``> log 2>&1``): not a terminal."""

    def isatty(self):
        return False


@pytest.mark.parametrize("fail", [False, True])
def test_results_start_on_their_own_line_after_a_progress_bar(monkeypatch, fail):
    import json

    from tqdm import tqdm

    import monomial_gmn.cli.cmd_zoo as cmd_zoo

    def run_info(args):
        bar = tqdm(total=3, desc="working", leave=False, disable=False)  # on stderr, no newline at close
        for _ in range(3):
            bar.update(1)
        bar.close()
        if fail:
            raise mg.ZooFormatError("broken zoo")
        print(json.dumps({"tau": 0.5}))
        return 0

    monkeypatch.setattr(cmd_zoo, "run_info", run_info)
    log = _Log()
    monkeypatch.setattr(sys, "stdout", log)
    monkeypatch.setattr(sys, "stderr", log)
    assert main(["zoo", "info", "anywhere"]) == (2 if fail else 0)
    assert sys.stdout is log and sys.stderr is log  # restored after the command
    lines = log.getvalue().split("\n")
    want = "monomial-gmn: error: broken zoo" if fail else '{"tau": 0.5}'
    assert want in lines, lines
    assert all(lines[:-1]), lines  # and no blank line added

"""Issue 21 regressions on the conversion side: silent wrong graphs, CLI crashes and rough messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import monomial_gmn as mg
from monomial_gmn.cli import main


def _one_line_error(capsys, argv) -> str:
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err
    return err


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
    assert "(2, 4) in the file, (2, 3) in the architecture" in _one_line_error(capsys, ["convert", str(wrong), *LIN])


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

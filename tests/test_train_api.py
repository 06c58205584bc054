"""The trainer's public surface after the split: one list of models (the registry), public names for what
experiments use, the atomic writers in monomial_gmn.io."""

import json

import pytest

from monomial_gmn.models import list_models, model_info


def test_model_lists_are_the_registry():
    import monomial_gmn.train as t
    from monomial_gmn.bench import bench_model_names
    from monomial_gmn.train import GBM_MODELS, MODEL_NAMES, fitted_models, model_names

    assert MODEL_NAMES == model_names() == tuple(list_models())
    assert set(GBM_MODELS) == set(fitted_models()) == {m for m in list_models() if not model_info(m).trainable}
    assert set(GBM_MODELS) == {"statnn-gbm", "invariant-gbm"}
    assert set(bench_model_names()) == {m for m in list_models() if model_info(m).trainable}
    with pytest.raises(AttributeError):
        t.NO_SUCH_NAME  # noqa: B018


def test_old_private_names_stay_importable():
    from monomial_gmn.train import mix_seed, task_for
    from monomial_gmn.train._trainer import GBM_MODELS, MODEL_NAMES, _mix, _task_for

    assert _mix is mix_seed and _task_for is task_for
    assert MODEL_NAMES == tuple(list_models()) and "statnn-gbm" in GBM_MODELS


def test_public_compare_helpers():
    from monomial_gmn.train import EVAL_SEED, format_level, parse_levels, parse_models, tuning_spaces

    assert EVAL_SEED == 12345
    assert [format_level(v) for v in parse_levels("0,0.5,2")] == ["0", "0.5", "2"]
    assert parse_models("monomial,gmn") == ["monomial", "gmn"]
    spaces = tuning_spaces(["monomial", "m2"], {"epochs": [2]}, {"m2": ("gmn", {})})
    assert spaces["monomial"]["epochs"].dist.values == spaces["m2"]["epochs"].dist.values == (2,)
    with pytest.raises(ValueError, match="no model"):
        tuning_spaces(["gmn"], {"no_such_param": [1]})


def test_train_config_rejects_unregistered_model(tmp_path):
    from monomial_gmn.train import TrainConfig

    with pytest.raises(ValueError, match="TrainConfig.model: unknown model 'nope'; expected one of gmn, "):
        TrainConfig(zoo=str(tmp_path), task="generalization", model="nope", out=str(tmp_path / "r")).validate()


def test_io_atomic_writers(tmp_path):
    from monomial_gmn.io import atomic_path, atomic_write_json, atomic_write_text

    atomic_write_json(tmp_path / "a" / "x.json", {"k": 1})
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": 1}
    atomic_write_text(tmp_path / "t.txt", "hi")
    assert (tmp_path / "t.txt").read_text() == "hi"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "t.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert (tmp_path / "t.txt").read_text() == "hi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.txt"]


def test_cli_help_lists_the_registry(capsys):
    from monomial_gmn.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert ", ".join(list_models()) in capsys.readouterr().out

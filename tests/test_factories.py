"""Models and data sets from the user's own code: import paths, file paths, plugins, clear errors."""

import os
import sys
import textwrap

import pytest
import torch

from landscape.datasets import load_dataset, load_dataset_from_spec
from landscape.errors import ConfigMismatchError, InputError
from landscape.factories import canonical, resolve
from landscape.models import build_model, check_structure, model_names, structure
from user_code import write_user_module


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A directory outside the project holding mynets.py, on sys.path."""
    write_user_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mynets", None)


def test_model_from_module_path_is_seeded_and_records_its_origin(user_dir):
    a = build_model("mynets:Net", seed=3, width=8)
    b = build_model("mynets:Net", seed=3, width=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.build_spec["name"] == "mynets:Net"
    assert a.build_spec["kwargs"] == {"in_dim": 12, "width": 8, "num_classes": 3}
    origin = a.build_spec["origin"]
    assert origin["kind"] == "module" and origin["file"] == str(user_dir / "mynets.py") and len(origin["sha256"]) == 64


def test_model_from_file_path_is_stored_with_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    write_user_module(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    model = build_model("elsewhere/mynets.py:Plain", seed=0)
    assert model.build_spec["name"] == f"{tmp_path}/elsewhere/mynets.py:Plain"
    assert canonical("elsewhere/mynets.py:Plain") == model.build_spec["name"]
    monkeypatch.chdir("/")  # the stored spec works from anywhere
    again = build_model(model.build_spec["name"], seed=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_module_in_the_working_directory_is_found_as_python_m_would(tmp_path, monkeypatch):
    write_user_module(tmp_path, "cwdnets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    try:
        assert build_model("cwdnets:Plain").build_spec["origin"]["file"] == str(tmp_path / "cwdnets.py")
    finally:
        sys.modules.pop("cwdnets", None)


def test_plugin_models_and_datasets_through_entry_points(tmp_path, monkeypatch):
    """A package that declares entry points in the groups landscape.models / landscape.datasets."""
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from torch import nn
        def tiny(width=4):
            return nn.Linear(12, width)
        def data():
            import torch
            return torch.zeros(8, 12), torch.arange(8) % 2, torch.ones(4, 12), torch.arange(4) % 2
    """))
    dist = tmp_path / "plugpkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugpkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[landscape.models]\ntinynet = plugpkg:tiny\n\n"
                                           "[landscape.datasets]\ntinydata = plugpkg:data\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "tinynet" in model_names()
        model = build_model("tinynet", width=5)
        assert model.weight.shape == (5, 12) and model.build_spec["origin"]["kind"] == "entry_point"
        data = load_dataset("tinydata")
        assert data.spec == {"name": "tinydata"} and data.num_classes == 2 and data.num_train == 8
    finally:
        sys.modules.pop("plugpkg", None)


@pytest.mark.parametrize("spec,message", [
    ("nosuchmodule_xyz:Net", "cannot import module 'nosuchmodule_xyz' for model 'nosuchmodule_xyz:Net'.*PYTHONPATH"),
    ("mynets:Nope", "module 'mynets' .*mynets.py.* has no attribute 'Nope'; it defines .*Net"),
    ("mynets:blobs.__doc__", "names a str, not a factory"),
    ("/no/such/dir/nets.py:Net", "no such file /no/such/dir/nets.py"),
    ("nosuchmodel", "unknown model 'nosuchmodel'; known models: .*package.module:factory"),
])
def test_unresolvable_model_specs_are_one_clear_line(user_dir, spec, message):
    with pytest.raises(InputError, match=message) as err:
        build_model(spec)
    assert "\n" not in str(err.value)


def test_module_that_raises_on_import_and_factories_that_fail(user_dir):
    (user_dir / "badimport.py").write_text("import torch\nraise ValueError('broken module')\n")
    with pytest.raises(InputError, match="importing module 'badimport'.*ValueError: broken module"):
        build_model("badimport:Net")
    with pytest.raises(InputError, match="model factory 'mynets:broken' raised RuntimeError: the factory failed"):
        build_model("mynets:broken")
    with pytest.raises(InputError, match="returned a int, not a torch.nn.Module"):
        build_model("mynets:not_a_module")
    with pytest.raises(InputError, match="needs_width.*missing 1 required .*'width'.*--model-kwargs"):
        build_model("mynets:needs_width")
    with pytest.raises(InputError, match="unknown keyword argument.*'depth'.*accepts"):
        build_model("mynets:Net", depth=3)


def test_structure_check_names_the_import_path_and_the_differences(user_dir):
    stored = structure(build_model("mynets:Net", width=16))
    check_structure(build_model("mynets:Net", width=16), stored, name="mynets:Net", kwargs={"width": 16})
    with pytest.raises(ConfigMismatchError) as err:
        check_structure(build_model("mynets:Net", width=8), stored, name="mynets:Net", kwargs={"width": 8},
                        origin={"file": str(user_dir / "mynets.py")})
    text = str(err.value)
    assert "'mynets:Net'" in text and str(user_dir / "mynets.py") in text and "\n" not in text
    assert "P = 147 now vs 291 stored" in text and "fc1.weight is [8, 12] now vs [16, 12] stored" in text
    assert "… 4 more" in text  # the first few differences, then a count


@pytest.mark.parametrize("factory,num_classes,y_dtype", [
    ("mynets:blobs", 3, torch.int64), ("mynets:blobs_dict", 5, torch.int64),
    ("mynets:blobs_datasets", 3, torch.int64), ("mynets:regression", 0, torch.float32)])
def test_dataset_factories_of_every_form_rebuild_from_their_spec(user_dir, factory, num_classes, y_dtype):
    data = load_dataset(factory)
    assert data.num_classes == num_classes and data.y_train.dtype == y_dtype
    assert data.x_train.dtype == torch.float32 and data.spec["name"] == factory
    again = load_dataset_from_spec(data.spec, checksum=data.checksum)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)


def test_dataset_factory_errors_and_changed_data(user_dir):
    with pytest.raises(InputError, match="returned a str; return a landscape Dataset"):
        load_dataset("mynets:wrong")
    with pytest.raises(InputError, match="dataset factory 'mynets:broken' raised RuntimeError.*--dataset-kwargs"):
        load_dataset("mynets:broken")
    with pytest.raises(InputError, match="unknown keyword argument.*'size'"):
        load_dataset("mynets:blobs", size=3)
    data = load_dataset("mynets:blobs", n=96)
    with pytest.raises(ConfigMismatchError, match="factory differ"):
        load_dataset_from_spec({**data.spec, "seed": 1}, checksum=data.checksum)


def test_resolve_reports_where_a_registered_name_comes_from():
    factory, origin = resolve("mlp", "model", {"mlp": dict})
    assert factory is dict and origin.kind == "registry" and origin.spec == "mlp"


def test_train_then_analyse_a_model_from_a_file_outside_the_project(tmp_path, monkeypatch, capsys):
    """`landscape train --model path/to/file.py:Net --dataset …:blobs`; later commands rebuild both unaided."""
    from analyses.cli import main
    from checkpoints import open_run
    from landscape.io import ResultsFile

    (tmp_path / "code").mkdir()
    write_user_module(tmp_path / "code")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run.h5"
    rc = main(["train", "--model", "code/mynets.py:Net", "--model-kwargs", '{"width": 8}', "--dataset",
               "code/mynets.py:blobs", "--dataset-kwargs", '{"n": 64}', "--batch-size", "16", "--steps", "8",
               "--save-every", "4", "--optimizer", "adamw", "--lr", "0.01", "--device", "cpu", "--no-progress",
               "--out", str(run)])
    assert rc == 0, capsys.readouterr().err
    monkeypatch.chdir("/")  # analyses from elsewhere: the file path was stored absolute
    with open_run(run) as r:
        assert r.file.model_name == f"{tmp_path}/code/mynets.py:Net" and r.file.dataset_spec["n"] == 64
        assert r.config.optimizer == "adamw" and r.replay["exact"]
        assert r.theta(6).shape == (r.file.P,) and not torch.equal(r.theta(6), r.theta(4))  # replayed from step 4
    assert main(["hessian", str(run), "--steps", "8", "--k", "2", "--out", str(tmp_path / "res.h5"),
                 "--device", "cpu"]) == 0
    with ResultsFile(tmp_path / "res.h5") as res:
        assert res.read_item("hessian/step_00000008/eigen")[0]["converged"] == 1

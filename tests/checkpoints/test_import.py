"""``landscape import``: state dicts saved elsewhere (.pt, .safetensors) become run files the analyses read."""

import json
import struct

import numpy as np
import pytest
import torch
from recorder_loop import loop

from analyses.cli import main
from checkpoints import open_run
from checkpoints.state_files import read_safetensors
from landscape.errors import InputError
from landscape.io import ResultsFile, RunFile

MODEL = ["--model", "mynets:Net", "--dataset", "mynets:blobs"]


@pytest.fixture(scope="module")
def recorded(user_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "run.h5"
    loop(out, 20)
    with open_run(out) as run:
        states = {s: run.model_at(s).state_dict() for s in (10, 20)}
    return out, states


def write_safetensors(path, tensors: dict) -> None:
    """The safetensors layout (8-byte header length, JSON header, raw little-endian bytes), written by hand."""
    codes = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def cli(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_imported_state_dict_gives_the_same_eigenvalues(recorded, tmp_path, capsys):
    """The done-when of issue 15: the same model's state_dict, imported, has the same Hessian spectrum."""
    run, states = recorded
    torch.save(states[20], tmp_path / "net.pt")
    imported = tmp_path / "imported.h5"
    rc, out, err = cli(["import", str(tmp_path / "net.pt"), *MODEL, "--steps", "20", "--out", str(imported)], capsys)
    assert rc == 0, err
    eig = {}
    for name, path in (("recorded", run), ("imported", imported)):
        res = tmp_path / f"{name}-res.h5"
        assert main(["hessian", str(path), "--steps", "20", "--k", "3", "--out", str(res), "--device", "cpu"]) == 0
        with ResultsFile(res) as r:
            eig[name] = r.read_item("hessian/step_00000020/eigen")[0]["eigenvalues"]
    np.testing.assert_array_equal(eig["imported"], eig["recorded"])
    with RunFile(imported) as f, RunFile(run) as g:
        assert np.array_equal(f.params(20), g.params(20)) and np.array_equal(f.buffers(20), g.buffers(20))
        assert f.meta["source"] == "import" and not f.has_batch_log and f.num_steps == 0


def test_several_checkpoints_safetensors_and_lightning_files(recorded, tmp_path, capsys):
    run, states = recorded
    write_safetensors(tmp_path / "a.safetensors", states[10])
    torch.save({"epoch": 2, "state_dict": {f"model.{k}": v for k, v in states[20].items()}}, tmp_path / "b.ckpt")
    out = tmp_path / "two.h5"
    rc, text, err = cli(["import", str(tmp_path / "a.safetensors"), str(tmp_path / "b.ckpt"), *MODEL,
                         "--steps", "10,20", "--out", str(out)], capsys)
    assert rc == 0, err
    assert "removed the prefix 'model.'" in text and "2 saved step(s) [10, 20]" in text
    with RunFile(out) as f, RunFile(run) as g:
        assert f.saved_steps.tolist() == [10, 20]
        for s in (10, 20):
            assert np.array_equal(f.params(s), g.params(s))
        assert [i["format"] for i in f.meta["imported"]] == ["safetensors", "pt"]
        assert f.meta["imported"][1]["key"] == "state_dict"
    with open_run(out) as r, pytest.raises(InputError, match="no batch log or optimizer state"):
        r.theta(15)
    rc, text, _ = cli(["info", str(out)], capsys)
    assert rc == 0 and "written by landscape import" in text and "not logged" in text


def test_safetensors_reader_agrees_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    tensors = {"w": torch.randn(3, 4), "h": torch.randn(5).half(), "i": torch.arange(6)}
    st.save_file(tensors, str(tmp_path / "x.safetensors"))
    back = read_safetensors(tmp_path / "x.safetensors")
    assert all(torch.equal(back[k], v) for k, v in tensors.items())


BAD = [  # (state dict edits, substrings of the one error line)
    (lambda s: s.pop("fc2.bias"), ["missing fc2.bias"]),
    (lambda s: s.update({"head.weight": torch.zeros(2)}), ["unexpected head.weight"]),
    (lambda s: s.update({"fc1.weight": torch.zeros(4, 12)}), ["fc1.weight is [4, 12] in the file vs [16, 12]"]),
]


@pytest.mark.parametrize("edit,needles", BAD, ids=["missing", "unexpected", "shape"])
def test_checkpoints_that_do_not_fit_are_one_line_and_write_nothing(recorded, tmp_path, capsys, edit, needles):
    state = dict(recorded[1][20])
    edit(state)
    torch.save(state, tmp_path / "bad.pt")
    rc, _, err = cli(["import", str(tmp_path / "bad.pt"), *MODEL, "--out", str(tmp_path / "x.h5")], capsys)
    lines = [line for line in err.splitlines() if line.startswith("landscape ")]
    assert rc != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in needles) and "'mynets:Net'" in lines[0], lines[0]
    assert not (tmp_path / "x.h5").exists()


def test_many_differences_are_listed_first_few(recorded, tmp_path, capsys):
    torch.save({f"other{i}": torch.zeros(1) for i in range(9)}, tmp_path / "wrong.pt")
    rc, _, err = cli(["import", str(tmp_path / "wrong.pt"), *MODEL, "--out", str(tmp_path / "x.h5")], capsys)
    assert rc != 0 and "(+" in err and "more)" in err and err.count("\n") == 1


class NotATensor:
    pass


def test_files_torch_load_refuses_and_other_bad_input(recorded, tmp_path, capsys):
    torch.save({"state_dict": recorded[1][20], "extra": NotATensor()}, tmp_path / "pickled.pt")
    rc, _, err = cli(["import", str(tmp_path / "pickled.pt"), *MODEL, "--out", str(tmp_path / "x.h5")], capsys)
    assert rc != 0 and "weights_only=True" in err and err.count("\n") == 1
    torch.save({"epoch": 1, "weights": recorded[1][20], "ema": recorded[1][20]}, tmp_path / "nested.pt")
    rc, _, err = cli(["import", str(tmp_path / "nested.pt"), *MODEL, "--out", str(tmp_path / "x.h5")], capsys)
    assert rc != 0 and "--key" in err and "ema" in err
    rc, _, err = cli(["import", str(tmp_path / "nested.pt"), *MODEL, "--key", "ema", "--steps", "1,2",
                      "--out", str(tmp_path / "x.h5")], capsys)
    assert rc != 0 and "one step per checkpoint" in err
    (tmp_path / "x.h5").write_bytes(b"keep")
    rc, _, err = cli(["import", str(tmp_path / "nested.pt"), *MODEL, "--key", "ema", "--out", str(tmp_path / "x.h5")],
                     capsys)
    assert rc != 0 and "--overwrite" in err and (tmp_path / "x.h5").read_bytes() == b"keep"

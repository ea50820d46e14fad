"""`edgeswin finetune`: the same seed gives the same bytes and another seed other ones; a model
it wrote can be fine-tuned again (its weights read back from its own ONNX); what it is given
wrong is refused with the file named and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeswin.demo.assets import make_image_folder
from edgeswin.errors import EdgeswinError
from edgeswin.files import sha256
from edgeswin.scenes import FAR
from tests.harness import REPO, SMALL

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def far(tmp_path_factory):
    """A small labelled folder of far-camera scenes, as `review` leaves confirmed frames."""
    return make_image_folder(tmp_path_factory.mktemp("far") / "reviewed", 4, seed=11,
                             width=320, height=180, sizes=FAR)


def finetune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeswin", "finetune", *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def test_the_same_seed_gives_the_same_model_and_the_result_can_be_tuned_again(far, tmp_path):
    outs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        run = finetune("--from", str(SMALL), "--data", str(far), "--out",
                       str(tmp_path / f"{name}.onnx"), "--epochs", "2", "--seed", seed,
                       "--device", "cpu", "-o", str(tmp_path / f"{name}-figures.json"))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        outs[name] = tmp_path / f"{name}.onnx"
    assert sha256(outs["a"]) == sha256(outs["b"])
    assert sha256(outs["a"]) != sha256(outs["c"])
    assert "held-out top-1" in run.stdout and "confirmed frames" in run.stdout
    assert "no --base-data: nothing guards what the model knew" in run.stdout
    meta = json.loads(outs["a"].with_suffix(".json").read_text())
    assert meta["labels"] == json.loads(SMALL.with_suffix(".json").read_text())["labels"]
    assert meta["input"]["shape"] == [1, 3, 64, 64]
    assert meta["finetune"]["from"] == SMALL.name and meta["finetune"]["seed"] == 3
    assert meta["finetune"]["from_sha256"] == sha256(SMALL)
    # 24 images, each label's latest fifth held out (one of four): 18 trained on, 6 held out.
    assert meta["finetune"]["images"] == {"train": 18, "held_out": 6, "base_train": 0,
                                          "base_held_out": 0}
    figures = json.loads((tmp_path / "a-figures.json").read_text())
    assert figures["before"]["held_out"]["images"] == 6

    from edgeswin.toolchain.recover import recover
    _, arch, diff = recover(outs["a"])  # what finetune wrote, read back for the next round
    assert arch.resolution == 64 and diff < 1e-4


def test_what_it_cannot_use_is_refused_and_nothing_is_written(far, tmp_path):
    out = tmp_path / "new.onnx"
    same = finetune("--from", str(SMALL), "--data", str(far), "--out", str(SMALL))
    assert same.returncode == 1 and "is the model fine-tuned from" in same.stderr
    clash = finetune("--from", str(SMALL), "--data", str(far), "--out", str(out), "-o",
                     str(out.with_suffix(".json")))
    assert clash.returncode == 1 and "sidecar goes" in clash.stderr

    none = finetune("--from", str(SMALL), "--data", str(far), "--out", str(out), "--epochs", "0")
    assert none.returncode == 1 and "must be above 0" in none.stderr

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07not a protobuf" * 100)
    corrupt.with_suffix(".json").write_text(SMALL.with_suffix(".json").read_text())
    bad = finetune("--from", str(corrupt), "--data", str(far), "--out", str(out))
    assert bad.returncode == 1 and str(corrupt) in bad.stderr, bad.stderr

    lone = tmp_path / "lone.onnx"
    lone.write_bytes(SMALL.read_bytes())
    bare = finetune("--from", str(lone), "--data", str(far), "--out", str(out))
    assert bare.returncode == 1 and "no sidecar lone.json" in bare.stderr, bare.stderr

    wrong = tmp_path / "wrong"
    (wrong / "pentagon").mkdir(parents=True)
    (wrong / "pentagon" / "a.jpg").write_bytes((far / "star").glob("*.png").__next__()
                                               .read_bytes())
    unknown = finetune("--from", str(SMALL), "--data", str(wrong), "--out", str(out))
    assert unknown.returncode == 1 and "pentagon" in unknown.stderr, unknown.stderr
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_an_onnx_without_recoverable_weights_names_what_to_pass_instead(tmp_path):
    from edgeswin.toolchain.recover import recover
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(SMALL))
    keep = [n for n in model.graph.initializer if not n.name.startswith("onnx::")]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)  # as another exporter would name things
    odd = tmp_path / "odd.onnx"
    onnx.save(model, str(odd))
    odd.with_suffix(".json").write_text(SMALL.with_suffix(".json").read_text())
    with pytest.raises(EdgeswinError, match="pass the training checkpoint instead"):
        recover(odd)

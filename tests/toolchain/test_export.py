"""`edgeswin export`: torchvision and timm Swins at non-224 resolutions, checkpoints (and their
mismatch errors), the fused-preprocess graph through the daemon's own engine, opset 16."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from edgeswin.engine import open_engine, read_model_info
from edgeswin.errors import EdgeswinError
from edgeswin.prepare.preprocess import Preprocessor
from edgeswin.scenes import random_scene
from tests.harness import REPO, SMALL

torch = pytest.importorskip("torch", reason="the model toolchain extra (make toolchain)")
from edgeswin.toolchain.export import ExportOptions, export  # noqa: E402

quiet = {"progress": lambda message: None}


def input_dims(path):
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims]


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    """The bundled fallback model's weights as a user's checkpoint (.safetensors)."""
    spec = importlib.util.spec_from_file_location("ckpt", REPO / "models/checkpoint_from_onnx.py")
    ckpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ckpt)
    path = tmp_path_factory.mktemp("ckpt") / "swin-demo-64.safetensors"
    assert ckpt.write_checkpoint(SMALL, path) < 1e-4  # rebuilt weights reproduce the ONNX
    return path


def test_torchvision_swin_t_at_160_pads_windows_and_matches_pytorch(tmp_path):
    out = tmp_path / "swin_t-160.onnx"
    result = export("swin_t", out, ExportOptions(num_classes=6, resolution=160), **quiet)
    assert input_dims(out) == [1, 3, 160, 160]
    # 160/4 = 40 does not tile window 7: torchvision pads, and the last stage drops its shift.
    assert result.fitting[0] == "stage 1: 40x40 map padded to 42x42 for window 7, shifted"
    assert result.fitting[-1].startswith("stage 4: 5x5 map padded to 7x7") and \
        "no shift" in result.fitting[-1]
    assert result.random_max_abs_diff < 1e-4 and result.real_max_abs_diff < 1e-4
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["architecture"]["definition"] == "torchvision.models.swin_t"
    assert meta["export"]["opset"] == 17 and meta["export"]["parity"]["real_top1_agreement"] == 1


def test_timm_swin_at_192_with_a_224_checkpoint(tmp_path):
    import timm

    pretrained = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False,
                                   num_classes=5)
    checkpoint = tmp_path / "trained-224.pth"
    torch.save({"state_dict": pretrained.state_dict()}, checkpoint)
    out = tmp_path / "timm-192.onnx"
    result = export("timm:swin_tiny_patch4_window7_224", out,
                    ExportOptions(checkpoint=checkpoint, resolution=192), **quiet)
    assert input_dims(out) == [1, 3, 192, 192]
    assert "stage 4: 6x6 map, window clamped to 6x6 from 7x7, no shift" in result.fitting
    # The clamped window's relative position bias (13x13 entries) is resized to 11x11.
    assert any("layers.3.blocks.0.attn.relative_position_bias_table: (169, 24) resized to "
               "(121, 24)" in note for note in result.notes)
    assert result.random_max_abs_diff < 1e-4 and result.real_max_abs_diff < 1e-4
    # --num-classes came from the checkpoint's head.
    assert read_model_info(out).labels == tuple(f"class_{i}" for i in range(5))


def test_a_checkpoint_that_does_not_fit_names_the_keys(tmp_path, demo_checkpoint):
    from safetensors.torch import load_file, save_file

    state = load_file(str(demo_checkpoint))
    state["features.9.extra.weight"] = state.pop("features.1.0.attn.proj.weight")
    save_file(state, str(tmp_path / "renamed.safetensors"))
    arch = str(SMALL.with_suffix(".json"))
    with pytest.raises(EdgeswinError) as err:
        export(arch, tmp_path / "x.onnx",
               ExportOptions(checkpoint=tmp_path / "renamed.safetensors"), **quiet)
    assert "missing (1): features.1.0.attn.proj.weight" in str(err.value)
    assert "unexpected (1): features.9.extra.weight" in str(err.value)

    with pytest.raises(EdgeswinError, match=r"shape mismatch \(2\): head.weight: checkpoint "
                                            r"\(6, 128\) vs model \(10, 128\)(.|\n)*--num-classes"):
        export(arch, tmp_path / "x.onnx",
               ExportOptions(checkpoint=demo_checkpoint, num_classes=10,
                             labels=tuple("abcdefghij")), **quiet)

    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EdgeswinError, match="broken.pth: cannot read checkpoint"):
        export(arch, tmp_path / "x.onnx", ExportOptions(checkpoint=tmp_path / "broken.pth"), **quiet)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")  # a pickled module, not tensors
    with pytest.raises(EdgeswinError, match=r"whole.pth: cannot read checkpoint: it holds more "
                                            r"than tensors .* save model.state_dict\(\)"):
        export(arch, tmp_path / "x.onnx", ExportOptions(checkpoint=tmp_path / "whole.pth"), **quiet)
    with pytest.raises(EdgeswinError, match="timm:resnet50 is not a Swin Transformer"):
        export("timm:resnet50", tmp_path / "x.onnx", **quiet)
    assert not (tmp_path / "x.onnx").exists()


def test_a_parity_failure_writes_nothing(tmp_path, demo_checkpoint):
    out = tmp_path / "strict.onnx"
    with pytest.raises(EdgeswinError, match=r"differ by up to .* > --tolerance 0.0; nothing "
                                            r"written"):
        export(str(SMALL.with_suffix(".json")), out,
               ExportOptions(checkpoint=demo_checkpoint, tolerance=0.0), **quiet)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_the_demo_checkpoint_exports_back_to_the_bundled_model(tmp_path, demo_checkpoint):
    out = tmp_path / "again-64.onnx"
    export(str(SMALL.with_suffix(".json")), out, ExportOptions(checkpoint=demo_checkpoint), **quiet)
    frames = [random_scene(np.random.default_rng(i), 640, 360)[0] for i in range(6)]
    bundled, again = open_engine(SMALL, "onnxruntime"), open_engine(out, "onnxruntime")
    prep = Preprocessor(bundled.info.input)
    for frame in frames:
        x = prep(frame)
        assert np.abs(bundled.infer(x) - again.infer(x)).max() < 1e-4


def test_fused_preprocess_graph_takes_uint8_bgr_and_classifies_the_same(tmp_path,
                                                                        demo_checkpoint):
    out = tmp_path / "fused-64.onnx"
    export(str(SMALL.with_suffix(".json")), out,
           ExportOptions(checkpoint=demo_checkpoint, fused_preprocess=True), **quiet)
    assert input_dims(out) == [1, 64, 64, 3]
    info = read_model_info(out)
    assert (info.input.dtype, info.input.layout, info.input.color) == ("uint8", "NHWC", "BGR")
    plain, fused = open_engine(SMALL, "onnxruntime"), open_engine(out, "onnxruntime")
    plain_prep, fused_prep = Preprocessor(plain.info.input), Preprocessor(info.input)
    rng = np.random.default_rng(11)
    for _ in range(20):
        frame, _ = random_scene(rng, 640, 360)
        x = fused_prep(frame)
        assert x.dtype == np.uint8 and x.shape == (1, 64, 64, 3)  # the daemon only resized
        a, b = plain.infer(plain_prep(frame)), fused.infer(x)
        assert a.argmax() == b.argmax() and np.abs(a - b).max() < 1e-3


def test_opset_16_decomposes_layernorm_for_old_parsers(tmp_path, demo_checkpoint):
    out = tmp_path / "op16.onnx"
    export(str(SMALL.with_suffix(".json")), out,
           ExportOptions(checkpoint=demo_checkpoint, opset=16), **quiet)
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert "LayerNormalization" not in ops and {"ReduceMean", "Pow"} <= ops
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 16


def test_export_command_reports_and_refuses_bad_input(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    run = subprocess.run([sys.executable, "-m", "edgeswin", "export", str(SMALL.with_suffix(
        ".json")), "--labels", str(labels), "--resolution", "96", "-o", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "stage 3: 6x6 map padded to 8x8 for window 4" in run.stdout
    assert "max |ORT - torch|" in run.stdout and read_model_info(tmp_path / "m.onnx").labels == \
        ("cat", "dog")
    bad = subprocess.run([sys.executable, "-m", "edgeswin", "export", "swin_t", "--resolution",
                          "100", "-o", str(tmp_path / "b.onnx")], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert bad.returncode == 1 and "--resolution 100: use a multiple of 32" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "edgeswin", "export", "resnet50", "-o",
                              str(tmp_path / "u.onnx")], capture_output=True, text=True,
                             cwd=REPO, timeout=120)
    assert unknown.returncode == 1 and "unknown architecture 'resnet50'" in unknown.stderr


def test_the_daemon_never_imports_torch():
    code = ("import sys, edgeswin.cli, edgeswin.daemon, edgeswin.engine.ort, "
            "edgeswin.toolchain.quantize, edgeswin.toolchain.evaluate; "
            "bad = [m for m in ('torch', 'torchvision', 'timm') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr


def test_fused_graph_through_the_tensorrt_builder_and_runtime(tmp_path, demo_checkpoint, trt):
    """The uint8 input of a fused graph survives build-engine and the engine's bindings."""
    from edgeswin.engine.build import build_engine

    out = tmp_path / "fused-64.onnx"
    export(str(SMALL.with_suffix(".json")), out,
           ExportOptions(checkpoint=demo_checkpoint, fused_preprocess=True), **quiet)
    plan = tmp_path / "fused-64.engine"
    build_engine(out, plan, "fp16", progress=lambda message: None)
    engine, reference = open_engine(plan, "tensorrt"), open_engine(out, "onnxruntime")
    assert engine.info.input.dtype == "uint8"
    prep = Preprocessor(engine.info.input)
    rng = np.random.default_rng(5)
    for _ in range(8):
        x = prep(random_scene(rng, 640, 360)[0])
        got, want = engine.infer(x), reference.infer(x)
        assert got.argmax() == want.argmax() and np.abs(got - want).max() < 1e-3

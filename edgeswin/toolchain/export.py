"""`edgeswin export`: a trained Swin (torchvision or timm definition, optional checkpoint) -> a
static batch-1 ONNX at the deploy resolution, and the sidecar the daemon reads beside it.

Hands on `<out>.onnx` + `<out>.json` only when onnx.checker passes and ONNX Runtime agrees
with PyTorch on random and rendered-scene inputs; otherwise nothing is written at `out`.
The sidecar's `export` block records what was done to fit the resolution (padding, clamped
windows, resized bias tables) and the parity figures. Needs torch (and torchvision or timm):
the model toolchain only, never imported by the daemon.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..engine import read_model_info, sidecar_path, write_atomic
from ..errors import EdgeswinError
from ..files import sha256
from ..prepare.preprocess import Preprocessor
from ..records import InputSpec

TORCHVISION = ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Checkpoints often wrap the state dict; DDP prefixes every key with "module.".
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


@dataclass
class ExportResult:
    onnx: Path
    resolution: int
    opset: int
    fitting: list[str]  # what was done so the windows fit the resolution
    random_max_abs_diff: float
    real_max_abs_diff: float
    real_top1_agreement: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**asdict(self), "onnx": str(self.onnx)}


def _torch():
    try:
        import torch
    except ImportError:
        raise EdgeswinError("export needs PyTorch: pip install 'edgeswin[toolchain]' (torch, "
                            "torchvision, timm, safetensors)") from None
    return torch


@dataclass
class Architecture:
    """Which definition to build: a torchvision name, a timm name, or a custom torchvision
    SwinTransformer described by an edgeswin sidecar's `architecture` block."""

    family: str  # torchvision | timm | custom
    name: str
    spec: dict = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    resolution: int = 224

    @property
    def definition(self) -> str:
        return {"timm": f"timm:{self.name}", "torchvision": f"torchvision.models.{self.name}",
                "custom": "torchvision.models.SwinTransformer"}[self.family]

    @staticmethod
    def parse(text: str) -> Architecture:
        if text.startswith("timm:"):
            return Architecture("timm", text[5:])
        if text in TORCHVISION:
            return Architecture("torchvision", text)
        path = Path(text)
        if path.suffix == ".json" and path.is_file():
            try:
                meta = json.loads(path.read_text())
                spec = meta["architecture"]
                if spec.get("definition") != "torchvision.models.SwinTransformer":
                    raise ValueError(f"definition {spec.get('definition')!r} is not "
                                     "torchvision.models.SwinTransformer")
                missing = [k for k in ("patch", "embed_dim", "depths", "heads", "window")
                           if k not in spec]
                if missing:
                    raise ValueError("architecture lacks " + ", ".join(missing))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise EdgeswinError(f"{path}: not a usable architecture description: "
                                    f"{exc}") from None
            return Architecture("custom", meta.get("name", path.stem), spec,
                                tuple(meta.get("labels", ())), int(spec.get("resolution", 224)))
        if text.startswith("swin") and "_" in text and text not in TORCHVISION:
            # timm names look like swin_tiny_patch4_window7_224; accept them without "timm:"
            return Architecture("timm", text)
        raise EdgeswinError(f"unknown architecture {text!r}: use one of {', '.join(TORCHVISION)}, "
                            "timm:<name> (e.g. timm:swin_tiny_patch4_window7_224), or a sidecar "
                            "JSON with an 'architecture' block (e.g. models/swin-demo-112.json)")


def build_model(arch: Architecture, num_classes: int, resolution: int):
    """The torch module, in eval mode, built for `resolution`, and what fitting it needed."""
    torch = _torch()
    torch.manual_seed(0)  # only matters without a checkpoint: random weights, reproducibly
    if arch.family == "timm":
        try:
            import timm
        except ImportError:
            raise EdgeswinError("timm is not installed: pip install timm") from None
        if "swin" not in arch.name:
            raise EdgeswinError(f"timm:{arch.name} is not a Swin Transformer (export handles "
                                "timm's swin* models)")
        if not timm.is_model(arch.name):
            close = ", ".join(timm.list_models(f"*{arch.name.split('_')[0]}*")[:8])
            raise EdgeswinError(f"timm has no model {arch.name!r} (some it has: {close})")
        try:
            model = timm.create_model(arch.name, pretrained=False, num_classes=num_classes,
                                      img_size=resolution)
        except (AssertionError, ValueError, TypeError) as exc:
            raise EdgeswinError(f"timm {arch.name} cannot be built at {resolution}x{resolution}"
                                f" (timm {timm.__version__}): {exc}") from None
        return model.eval(), _timm_fitting(model)
    from torchvision.models import swin_transformer as tv

    if arch.family == "torchvision":
        model = getattr(tv, arch.name)(weights=None, num_classes=num_classes)
    else:
        s = arch.spec
        model = tv.SwinTransformer(patch_size=[s["patch"]] * 2, embed_dim=s["embed_dim"],
                                   depths=s["depths"], num_heads=s["heads"],
                                   window_size=[s["window"]] * 2, stochastic_depth_prob=0.0,
                                   num_classes=num_classes)
    return model.eval(), _torchvision_fitting(model, resolution)


def _torchvision_fitting(model, resolution: int) -> list[str]:
    """torchvision pads each stage's feature map up to a multiple of the window (the padded
    tokens take part in attention) and drops the shift where the window covers the map."""
    patch = model.features[0][0].stride[0]
    window = model.features[1][0].attn.window_size[0]
    size = math.ceil(resolution / patch)
    stages = sum(1 for f in model.features if f.__class__.__name__ == "Sequential") - 1
    notes = []
    for stage in range(stages):
        padded = math.ceil(size / window) * window
        shift = "no shift (the window covers the map)" if window >= padded else "shifted"
        if padded != size or window >= padded:
            notes.append(f"stage {stage + 1}: {size}x{size} map padded to {padded}x{padded} "
                         f"for window {window}, {shift}")
        size = math.ceil(size / 2)
    return notes or [f"windows of {window} tile every stage exactly"]


def _timm_fitting(model) -> list[str]:
    """timm computes each block's window, shift and mask at construction from img_size: a map
    smaller than the window gets the window clamped to it and no shift; others are padded."""
    blocks = [(i, stage.blocks[-1]) for i, stage in enumerate(model.layers)]
    configured = max(b.window_size for _, b in blocks)
    notes = []
    for i, block in blocks:
        h, w = block.input_resolution
        wh, ww = block.window_size
        parts = []
        if (wh, ww) != configured:
            parts.append(f"window clamped to {wh}x{ww} from {configured[0]}x{configured[1]}")
        if h % wh or w % ww:
            parts.append(f"padded to {math.ceil(h / wh) * wh}x{math.ceil(w / ww) * ww} for "
                         f"window {wh}x{ww}")
        if any(getattr(block, "target_shift_size", ())) and not any(block.shift_size):
            parts.append("no shift")
        if parts:
            notes.append(f"stage {i + 1}: {h}x{w} map, " + ", ".join(parts))
    return notes or ["windows tile every stage exactly"]


def read_checkpoint(path: Path) -> dict:
    """A state dict from .pth/.pt (torch.load, tensors only) or .safetensors."""
    torch = _torch()
    if not path.is_file():
        raise EdgeswinError(f"{path}: checkpoint not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and safetensors raise their own kinds
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights only" in why.lower():
            why = ("it holds more than tensors (a whole pickled model?). Only tensors are read, "
                   "so no code in the file runs: save model.state_dict() instead")
        raise EdgeswinError(f"{path}: cannot read checkpoint: {why}") from None
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise EdgeswinError(f"{path}: no state dict in this checkpoint")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def head_classes(state: dict) -> int | None:
    for key in ("head.weight", "head.fc.weight"):
        if key in state and getattr(state[key], "ndim", 0) == 2:
            return int(state[key].shape[0])
    return None


def load_weights(model, state: dict, source: Path, arch: Architecture) -> list[str]:
    """Load `state` into `model`; any missing, unexpected or misshapen key is an error that
    names it. Returns notes on what timm's own checkpoint filter resized."""
    notes = []
    if arch.family == "timm":
        import sys
        filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            before = {k: tuple(v.shape) for k, v in state.items()}
            with warnings.catch_warnings():  # timm's interpolation warns about torch internals
                warnings.simplefilter("ignore", UserWarning)
                state = filter_fn(state, model)
            notes += [f"{k}: {before[k]} resized to {tuple(v.shape)} by timm's checkpoint "
                      "filter" for k, v in state.items() if k in before and before[k] != tuple(v.shape)]
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    missing = [k for k in expected if k not in state and k not in buffers]
    unexpected = [k for k in state if k not in expected]
    misshapen = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                 for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or misshapen:
        lines = []
        for title, keys in (("missing", missing), ("unexpected", unexpected),
                            ("shape mismatch", misshapen)):
            if keys:
                more = f" (+{len(keys) - 8} more)" if len(keys) > 8 else ""
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:8]) + more)
        hint = ""
        if any(k.startswith(("head.weight", "head.fc.weight")) for k in misshapen):
            hint = ("\n  the classifier head differs: pass --num-classes (or --labels) to match "
                    "the checkpoint")
        raise EdgeswinError(f"{source} does not fit {arch.name}:\n" + "\n".join(lines) + hint)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return notes


def with_fused_preprocess(model, mean, std):
    """A torch module: uint8 1xHxWx3 BGR in -> normalised RGB NCHW float -> `model`."""
    torch = _torch()

    class Fused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("gain", torch.tensor([1 / (255 * s) for s in std]).view(
                1, 3, 1, 1))
            self.register_buffer("bias", torch.tensor([-m / s for m, s in zip(mean, std)]).view(
                1, 3, 1, 1))

        def forward(self, x):
            # Cast first: TensorRT (>= 8.5) takes a UINT8 network input only into a Cast.
            x = x.float().permute(0, 3, 1, 2).flip(1)  # flip: BGR -> RGB, the model's order
            return self.model(x * self.gain + self.bias)

    return Fused().eval()


def input_spec(resolution: int, fused: bool) -> InputSpec:
    if fused:
        return InputSpec(name="input", height=resolution, width=resolution, layout="NHWC",
                         dtype="uint8", color="BGR", scale=1.0)
    return InputSpec(name="input", height=resolution, width=resolution, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD)


def scene_inputs(spec: InputSpec, count: int, folder: Path | None) -> list[np.ndarray]:
    """Real inputs for the parity check: images from `folder`, or rendered scenes, through the
    daemon's own preprocessing."""
    prep = Preprocessor(spec)
    if folder is not None:
        from ..labelled import read_image
        from .quantize import image_files
        images = [read_image(p) for p in image_files(folder)[:count]]
    else:
        from ..scenes import random_scene
        rng = np.random.default_rng(7)
        images = [random_scene(rng, 640, 360)[0] for _ in range(count)]
    return [prep(image) for image in images]


def random_inputs(spec: InputSpec, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    if spec.dtype == "uint8":
        return [rng.integers(0, 256, spec.shape, dtype=np.uint8) for _ in range(count)]
    return [rng.standard_normal(spec.shape).astype(np.float32) for _ in range(count)]


def export(arch_name: str, out: Path, checkpoint: Path | None = None,
           num_classes: int | None = None, labels: tuple[str, ...] = (),
           resolution: int | None = None, opset: int = 17, fused_preprocess: bool = False,
           check_images: Path | None = None, tolerance: float = 1e-3,
           progress=print) -> ExportResult:
    # Long: one procedure read top to bottom; each step may refuse, and nothing is
    # written before every check has passed.
    torch = _torch()
    import onnx
    import onnxruntime as ort

    arch = Architecture.parse(arch_name)
    resolution = resolution or arch.resolution
    if opset not in (16, 17):
        raise EdgeswinError("--opset must be 17 (TensorRT >= 8.6) or 16 (TensorRT 8.5 parsers)")
    step = arch.spec.get("patch", 4) * 2 ** (len(arch.spec.get("depths", (0,) * 4)) - 1)
    if resolution % step:
        raise EdgeswinError(f"--resolution {resolution}: use a multiple of {step} (the patch "
                            "size and each 2x patch merge must leave an integer map)")
    state = read_checkpoint(checkpoint) if checkpoint else None
    labels = labels or arch.labels
    if num_classes is None:
        num_classes = len(labels) or (head_classes(state) if state else None) or 1000
    if labels and len(labels) != num_classes:
        raise EdgeswinError(f"{len(labels)} labels but --num-classes {num_classes}")
    labels = labels or tuple(f"class_{i}" for i in range(num_classes))

    progress(f"building {arch.family} {arch.name} for {resolution}x{resolution}, "
             f"{num_classes} classes ...")
    model, fitting = build_model(arch, num_classes, resolution)
    notes = []
    if state is not None:
        progress(f"loading {checkpoint} ...")
        notes += load_weights(model, state, checkpoint, arch)
    else:
        notes.append("no checkpoint: random weights")
    for line in fitting + notes:
        progress(f"  {line}")

    spec = input_spec(resolution, fused_preprocess)
    module = with_fused_preprocess(model, IMAGENET_MEAN, IMAGENET_STD) if fused_preprocess \
        else model
    dummy = torch.from_numpy(random_inputs(spec, 1)[0])
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / out.name
        progress(f"exporting ONNX opset {opset}, static batch 1, input {list(spec.shape)} "
                 f"{spec.dtype} ...")
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # timm's shape asserts trace to constants: right for a static-shape export.
                # The TorchScript exporter is deprecated but writes opset 16/17 natively; the
                # torch.export one targets opset 18+ and converts down, which 8.5/8.6 parsers
                # are the ones to suffer from.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, (dummy,), str(candidate), opset_version=opset,
                                  input_names=["input"], output_names=["logits"],
                                  do_constant_folding=True, dynamo=False)
        except Exception as exc:  # the exporter raises many kinds for unsupported graphs
            raise EdgeswinError(f"ONNX export of {arch.name} failed: {exc}") from None
        try:
            onnx.checker.check_model(str(candidate), full_check=True)
        except Exception as exc:
            raise EdgeswinError(f"onnx.checker refused the export: {exc}") from None
        progress("onnx.checker: OK; comparing ONNX Runtime with PyTorch ...")
        session = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])

        def max_diff(inputs):
            worst, agree = 0.0, 0
            for x in inputs:
                with torch.no_grad():
                    ref = module(torch.from_numpy(x)).numpy()
                got = session.run(None, {"input": x})[0]
                worst = max(worst, float(np.abs(ref - got).max()))
                agree += int(ref.argmax() == got.argmax())
            return worst, agree / len(inputs)

        random_diff, _ = max_diff(random_inputs(spec, 4))
        real_diff, agreement = max_diff(scene_inputs(spec, 8, check_images))
        progress(f"max |ORT - torch|: random inputs {random_diff:.2e}, real inputs "
                 f"{real_diff:.2e} (top-1 agreement {agreement:.0%})")
        if max(random_diff, real_diff) > tolerance:
            raise EdgeswinError(f"ONNX Runtime and PyTorch differ by up to "
                                f"{max(random_diff, real_diff):.2e} > --tolerance {tolerance}; "
                                f"nothing written to {out}")
        meta = {
            "name": out.stem, "labels": list(labels),
            "input": {"name": "input", "shape": list(spec.shape), "layout": spec.layout,
                      "dtype": spec.dtype, "color": spec.color, "scale": spec.scale,
                      "mean": list(spec.mean), "std": list(spec.std), "resize": "area"},
            "output": {"name": "logits", "kind": "logits"},
            "precision": "fp32",
            "architecture": {**arch.spec, "family": "swin", "definition": arch.definition,
                             "resolution": resolution},
            "export": {
                "source": arch_name, "checkpoint": str(checkpoint) if checkpoint else None,
                "checkpoint_sha256": sha256(checkpoint) if checkpoint else None,
                "opset": opset, "fused_preprocess": fused_preprocess, "fitting": fitting,
                "notes": notes, "torch": torch.__version__,
                "parity": {"random_max_abs_diff": random_diff, "real_max_abs_diff": real_diff,
                           "real_top1_agreement": agreement}},
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, candidate.read_bytes())
        write_atomic(sidecar_path(out), (json.dumps(meta, indent=2) + "\n").encode())
    read_model_info(out)  # the daemon must be able to read what was written
    progress(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {sidecar_path(out).name}")
    return ExportResult(out, resolution, opset, fitting, random_diff, real_diff, agreement, notes)

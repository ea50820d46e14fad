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
from .architecture import Architecture, build_model, require_torch
from .checkpoint import head_classes, load_weights, read_checkpoint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def with_fused_preprocess(model, mean, std):
    """A torch module: uint8 1xHxWx3 BGR in -> normalised RGB NCHW float -> `model`."""
    torch = require_torch()

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


@dataclass(frozen=True)
class ExportOptions:
    """How `export` makes the ONNX file (the `edgeswin export` flags of the same names)."""
    checkpoint: Path | None = None  # the weights; None: random weights
    num_classes: int | None = None  # None: from the labels, else the checkpoint's head
    labels: tuple[str, ...] = ()
    resolution: int | None = None  # None: the architecture's own
    opset: int = 17
    fused_preprocess: bool = False  # uint8 NHWC in, normalisation inside the graph
    check_images: Path | None = None  # real images to compare ONNX Runtime and PyTorch on
    tolerance: float = 1e-3  # the largest |ONNX Runtime - PyTorch| written


def export(arch_name: str, out: Path, options: ExportOptions = ExportOptions(),
           progress=print) -> ExportResult:
    """`arch_name` (torchvision, timm: or a sidecar's .json) as ONNX at `out`, with its
    sidecar, checked against PyTorch first; the result and its checks."""
    # Long: one procedure read top to bottom; each step may refuse, and nothing is
    # written before every check has passed.
    torch = require_torch()
    import onnx
    import onnxruntime as ort

    arch = Architecture.parse(arch_name)
    resolution = options.resolution or arch.resolution
    checkpoint = options.checkpoint
    opset = options.opset
    if opset not in (16, 17):
        raise EdgeswinError("--opset must be 17 (TensorRT >= 8.6) or 16 (TensorRT 8.5 parsers)")
    step = arch.spec.get("patch", 4) * 2 ** (len(arch.spec.get("depths", (0,) * 4)) - 1)
    if resolution % step:
        raise EdgeswinError(f"--resolution {resolution}: use a multiple of {step} (the patch "
                            "size and each 2x patch merge must leave an integer map)")
    state = read_checkpoint(checkpoint) if checkpoint else None
    labels = options.labels or arch.labels
    num_classes = options.num_classes
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

    spec = input_spec(resolution, options.fused_preprocess)
    module = with_fused_preprocess(model, IMAGENET_MEAN, IMAGENET_STD) if options.fused_preprocess \
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
        real_diff, agreement = max_diff(scene_inputs(spec, 8, options.check_images))
        progress(f"max |ORT - torch|: random inputs {random_diff:.2e}, real inputs "
                 f"{real_diff:.2e} (top-1 agreement {agreement:.0%})")
        if max(random_diff, real_diff) > options.tolerance:
            raise EdgeswinError(f"ONNX Runtime and PyTorch differ by up to "
                                f"{max(random_diff, real_diff):.2e} > --tolerance {options.tolerance}; "
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
                "opset": opset, "fused_preprocess": options.fused_preprocess, "fitting": fitting,
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

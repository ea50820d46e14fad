"""Which Swin to build and how it fits a resolution: a torchvision name, a timm name, or a
custom torchvision SwinTransformer described by a sidecar's `architecture` block
(`Architecture.parse`), built in eval mode for the deploy resolution (`build_model`), with what
fitting it needed (padding, clamped windows, dropped shifts) in words. Needs torch (and
torchvision or timm): the model toolchain only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgeswinError

TORCHVISION = ("swin_t", "swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b")


def require_torch():
    """torch, or a clear error saying how to install the toolchain."""
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
    torch = require_torch()
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

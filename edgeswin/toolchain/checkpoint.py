"""A trained checkpoint's weights into a built model: the state dict read from .pth, .pt or
.safetensors (tensors only; unwrapped from training wrappers, DDP's "module." prefix dropped),
its head's class count, and the weights loaded strictly (a missing, unexpected or misshapen
key named), with what timm's own filter resized, in words. Needs torch: the model toolchain
only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import EdgeswinError
from .architecture import Architecture, require_torch

# Checkpoints often wrap the state dict; DDP prefixes every key with "module.".
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def read_checkpoint(path: Path) -> dict:
    """A state dict from .pth/.pt (torch.load, tensors only) or .safetensors."""
    torch = require_torch()
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
    """The class count of the checkpoint's classifier head, when it has one."""
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

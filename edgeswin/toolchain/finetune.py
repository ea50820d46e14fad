"""`edgeswin finetune`: a better model from the frames a person confirmed on the review page.

MODEL (an ONNX file whose weights `recover` reads back, or a checkpoint with its sidecar) is
trained on on the confirmed frames (`label/*.jpg`) plus a sample of the original data against
forgetting, at the model's own resolution and through the daemon's own preprocessing. Each
label's latest frames (by file name, which starts with the time the device kept them) are held
out, so the near-identical neighbours of a video frame mostly fall on one side; top-1 on them
is measured before and after. Hands on NEW.onnx and its sidecar (written by `export`, with its
parity check, plus a `finetune` block: source, data, seed, figures), ready for `quantize` and
for a rollout or a fleet push.

Deterministic for a seed on one machine: seeded shuffles and flips, deterministic kernels.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..engine import sidecar_path, write_atomic
from ..errors import EdgeswinError
from ..files import sha256
from ..labelled import labelled_images, read_image
from ..prepare.preprocess import Preprocessor
from .architecture import build_model
from .checkpoint import load_weights, read_checkpoint
from .export import ExportOptions, export, input_spec
from .recover import architecture_of

CHECKPOINTS = (".safetensors", ".pth", ".pt")


@dataclass
class Split:
    """Preprocessed inputs (N, 3, H, W) and label indices of one part of the data."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Result:
    out: Path
    device: str
    seconds: float
    images: dict[str, int]
    before: dict[str, dict] = field(default_factory=dict)  # split -> {"top1", "per_label"}
    after: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**asdict(self), "out": str(self.out)}


def load_source(source: Path, progress, sidecar: Path | None = None):
    """(torch model in train mode, arch, export name) from an ONNX file or a checkpoint (with
    `sidecar`, by default the .json beside it)."""
    if not source.is_file():
        raise EdgeswinError(f"{source}: model file not found")
    if source.suffix == ".onnx":
        from .recover import recover
        progress(f"recovering the weights of {source} ...")
        model, arch, diff = recover(source)
        progress(f"  rebuilt in PyTorch, max |torch - ONNX Runtime| {diff:.1e}")
        return model, arch, architecture_of(sidecar_path(source))[1]
    if source.suffix not in CHECKPOINTS:
        raise EdgeswinError(f"{source}: --from takes an .onnx (with its sidecar) or a "
                            f"checkpoint ({', '.join(CHECKPOINTS)}) with a sidecar .json beside it")
    sidecar = sidecar or source.with_suffix(".json")
    if not sidecar.is_file():
        raise EdgeswinError(f"{source}: no sidecar {sidecar} (the labels and architecture: the "
                            "JSON `export` wrote for this model; --sidecar names it)")
    arch, name = architecture_of(sidecar)
    model, _ = build_model(arch, len(arch.labels), arch.resolution)
    load_weights(model, read_checkpoint(source), source, arch)
    return model, arch, name


def split_folder(folder: Path, labels: tuple[str, ...], holdout: float, limit: int | None,
                 rng: np.random.Generator) -> tuple[list, list]:
    """(train, held-out) (path, label) lists: each label's last `holdout` share by name; with
    `limit`, a seeded sample of that many spread over the labels first."""
    items = labelled_images(folder, labels)
    if limit is not None and limit < len(items):
        items = sorted(items[i] for i in rng.choice(len(items), limit, replace=False))
    train, held = [], []
    for index in range(len(labels)):
        mine = sorted(p for p in items if p[1] == index)
        cut = len(mine) - (math.ceil(len(mine) * holdout) if len(mine) >= 2 else 0)
        train += mine[:cut]
        held += mine[cut:]
    return train, held


def prepare(items: list, prep: Preprocessor) -> Split:
    if not items:
        return Split(np.zeros((0, 3, 1, 1), np.float32), np.zeros(0, np.int64))
    x = np.concatenate([prep(read_image(path)) for path, _ in items]).astype(np.float32)
    return Split(x, np.array([label for _, label in items], np.int64))


def top1(model, split: Split, labels: tuple[str, ...], device) -> dict:
    """{"top1": share right, "images": n, "per_label": {label: [right, of]}}."""
    import torch
    if not len(split):
        return {"top1": None, "images": 0, "per_label": {}}
    model.eval()
    with torch.no_grad():
        guess = torch.cat([model(torch.from_numpy(split.x[i:i + 64]).to(device)).argmax(1).cpu()
                           for i in range(0, len(split), 64)]).numpy()
    model.train()
    per = {labels[i]: [int(((guess == i) & (split.y == i)).sum()), int((split.y == i).sum())]
           for i in range(len(labels)) if (split.y == i).any()}
    return {"top1": float((guess == split.y).mean()), "images": len(split), "per_label": per}


def pick_device(wanted: str | None):
    import torch
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise EdgeswinError(f"--device {wanted}: no CUDA device is visible to PyTorch")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Training:
    """How `finetune` trains (the `edgeswin finetune` flags of the same names)."""
    epochs: int = 10
    lr: float = 3e-4  # AdamW's peak rate: half an epoch's warm-up, then a cosine decay
    batch: int = 32
    holdout: float = 0.2  # the share of each folder kept out of training, to measure on
    base_limit: int | None = None  # base images trained on; None: as many as the new ones, 50+
    seed: int = 0  # the same seed, the same bytes
    device: str | None = None  # None: CUDA when there is one, else the CPU
    flips: str = "h"  # h, v or hv: the random flips of the training images


def finetune(source: Path, data: Path, out: Path, base_data: Path | None = None,
             training: Training = Training(), progress=print, sidecar: Path | None = None
             ) -> Result:
    # Long: one procedure read top to bottom: load, split, measure, train, measure, export.
    if out.resolve() == source.resolve():
        raise EdgeswinError(f"--out {out} is the model fine-tuned from: write a new file")
    if out.suffix != ".onnx":
        raise EdgeswinError(f"--out {out}: the new model is an .onnx file")
    if not 0 <= training.holdout < 1:
        raise EdgeswinError(f"--holdout {training.holdout}: a share from 0 to below 1")
    if training.epochs < 1 or training.batch < 1 or not training.lr > 0 or (
            training.base_limit is not None and training.base_limit < 1):
        raise EdgeswinError("--epochs, --batch, --lr and --base-limit must be above 0")
    # cuBLAS is deterministic only with a fixed workspace, set before its first call.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    started = time.monotonic()
    torch.manual_seed(training.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = pick_device(training.device)
    model, arch, export_name = load_source(source, progress, sidecar)
    labels = arch.labels
    if not labels:
        raise EdgeswinError(f"{source}: its sidecar names no labels")
    prep = Preprocessor(input_spec(arch.resolution, fused=False))
    rng = np.random.default_rng(training.seed)
    train_items, held_items = split_folder(data, labels, training.holdout, None, rng)
    if not train_items:
        raise EdgeswinError(f"{data}: every image would be held out: confirm more frames "
                            "(a label needs two images to hold one out)")
    base_train, base_held = [], []
    if base_data is not None:
        base_train, base_held = split_folder(
            base_data, labels, training.holdout,
            training.base_limit or max(len(train_items), 50), rng)
    progress(f"reading {len(train_items) + len(held_items)} confirmed frames from {data}"
             + (f" and {len(base_train) + len(base_held)} images of {base_data}"
                if base_data else " (no --base-data: nothing guards what the model knew)"))
    needed = (len(train_items) + len(held_items) + len(base_train) + len(base_held)) \
        * 3 * arch.resolution ** 2 * 4  # every input is held in memory, float32
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory // 2:
        raise EdgeswinError(f"the inputs need {needed / 2**30:.1f} GiB, more than half of this "
                            f"machine's {memory / 2**30:.1f} GiB: fine-tune on fewer frames "
                            "(a part of --data, a smaller --base-limit)")
    parts = {name: prepare(items, prep) for name, items in
             (("train", train_items + base_train), ("held_out", held_items),
              ("base_held_out", base_held))}
    result = Result(out, str(dev), 0.0, {"train": len(train_items), "held_out": len(held_items),
                                         "base_train": len(base_train),
                                         "base_held_out": len(base_held)})
    model = model.to(dev).train()
    for name in ("held_out", "base_held_out"):
        result.before[name] = top1(model, parts[name], labels, dev)

    train = parts["train"]
    x_all, y_all = torch.from_numpy(train.x), torch.from_numpy(train.y)
    steps_per_epoch = math.ceil(len(train) / training.batch)
    total, warmup = steps_per_epoch * training.epochs, max(steps_per_epoch // 2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=0.05)
    order = torch.Generator().manual_seed(training.seed)
    threads = f", {torch.get_num_threads()} threads" if dev.type == "cpu" else ""
    progress(f"fine-tuning on {dev}{threads}: {len(train)} images, {training.epochs} epochs "
             f"of {steps_per_epoch} steps (batch {training.batch}); the bar's estimate "
             "follows the first steps")
    bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    step = 0
    for _ in range(training.epochs):
        perm = torch.randperm(len(train), generator=order)
        for i in range(steps_per_epoch):
            idx = perm[i * training.batch:(i + 1) * training.batch]
            x, y = x_all[idx].to(dev), y_all[idx].to(dev)
            coin = torch.rand(2, generator=order)
            if "h" in training.flips and coin[0] < 0.5:
                x = x.flip(3)
            if "v" in training.flips and coin[1] < 0.5:
                x = x.flip(2)
            if step < warmup:
                rate = training.lr * (step + 1) / warmup
            else:
                rate = training.lr * 0.5 * (1 + math.cos(
                    math.pi * (step - warmup) / max(total - warmup, 1)))
            for group in opt.param_groups:
                group["lr"] = rate
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            bar.update()
    bar.close()
    for name in ("held_out", "base_held_out"):
        result.after[name] = top1(model, parts[name], labels, dev)
    result.seconds = round(time.monotonic() - started, 1)

    from safetensors.torch import save_file
    model = model.cpu().eval()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "finetuned.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        export(export_name, out, ExportOptions(weights, len(labels), labels, arch.resolution),
               progress=progress)
    meta = json.loads(sidecar_path(out).read_text())
    meta["export"].update(source=str(source), checkpoint=None, checkpoint_sha256=None)
    meta["finetune"] = {
        "from": source.name, "from_sha256": sha256(source), "data": str(data),
        "base_data": str(base_data) if base_data else None, "images": result.images,
        **asdict(training), "device": str(dev), "seconds": result.seconds,
        "top1_before": {k: v["top1"] for k, v in result.before.items()},
        "top1_after": {k: v["top1"] for k, v in result.after.items()}}
    write_atomic(sidecar_path(out), (json.dumps(meta, indent=2) + "\n").encode())
    return result


def report(result: Result) -> list[str]:
    """The before/after table the command prints."""
    def pct(value):
        return "   -  " if value is None else f"{value:6.1%}"
    lines = [f"{'held-out top-1':<24} {'before':>7} {'after':>7}  images"]
    for name, title in (("held_out", "confirmed frames"), ("base_held_out", "base data")):
        before, after = result.before.get(name), result.after.get(name)
        if not before or not before["images"]:
            lines.append(f"  {title:<22} (none held out)")
            continue
        lines.append(f"  {title:<22} {pct(before['top1'])} {pct(after['top1'])}  "
                     f"{before['images']}")
        for label, (right, of) in before["per_label"].items():
            now = after["per_label"][label][0]
            lines.append(f"    {label:<20} {pct(right / of)} {pct(now / of)}  {of}")
    return lines

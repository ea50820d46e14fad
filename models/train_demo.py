"""Train the bundled demo Swin Transformers from scratch on procedural scenes.

Reproducible: every image comes from `edgeswin.scenes` with a seed derived from (--seed, chunk),
and training uses a fixed torch seed. Two steps, so the data can be made once for both models:

    python models/train_demo.py data  --out /tmp/scenes.npz --samples 200000 --test 10000
    python models/train_demo.py train --data /tmp/scenes.npz --model primary  --out models/
    python models/train_demo.py train --data /tmp/scenes.npz --model fallback --out models/

`train` writes `<name>.onnx`, its sidecar `<name>.json` (labels, input spec), the checkpoint
`<name>.safetensors` (for `edgeswin export` at other resolutions) and `<name>.train.json` (the
curve, the held-out accuracy of the exported ONNX, timings).
Needs torch + torchvision (model toolchain only); onnxruntime to check the export.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgeswin.scenes import LABELS, random_scene  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# Resolutions whose windows tile every stage: 112/4 = 28 -> 14 -> 7 (window 7);
# 64/4 = 16 -> 8 -> 4 (window 4). No padding, no clamped windows.
MODELS = {
    "primary": dict(name="swin-demo-112", resolution=112, patch=4, embed_dim=48,
                    depths=[2, 2, 6], heads=[3, 6, 12], window=7),
    "fallback": dict(name="swin-demo-64", resolution=64, patch=4, embed_dim=32,
                     depths=[2, 2, 2], heads=[2, 4, 8], window=4),
}
CHUNK = 500


def _make_chunk(args: tuple[int, int, tuple[int, ...]]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    seed, chunk, sizes = args
    rng = np.random.default_rng([seed, chunk])
    out = {r: np.empty((CHUNK, r, r, 3), np.uint8) for r in sizes}
    labels = np.empty(CHUNK, np.int64)
    for i in range(CHUNK):
        img, labels[i] = random_scene(rng)
        # Same resize as the daemon's preprocess: INTER_AREA from the full frame, then RGB.
        for r in sizes:
            out[r][i] = cv2.cvtColor(cv2.resize(img, (r, r), interpolation=cv2.INTER_AREA),
                                     cv2.COLOR_BGR2RGB)
    return out, labels


def make_data(args: argparse.Namespace) -> None:
    sizes = tuple(sorted({m["resolution"] for m in MODELS.values()}))
    t0 = time.time()
    result: dict[str, np.ndarray] = {}
    for split, n, seed in (("train", args.samples, args.seed), ("test", args.test, args.seed + 1)):
        jobs = [(seed, c, sizes) for c in range(math.ceil(n / CHUNK))]
        with Pool(args.workers) as pool:
            parts = pool.map(_make_chunk, jobs)
        for r in sizes:
            result[f"{split}_{r}"] = np.concatenate([p[0][r] for p in parts])[:n]
        result[f"{split}_y"] = np.concatenate([p[1] for p in parts])[:n]
        print(f"{split}: {n} images in {time.time() - t0:.0f}s", flush=True)
    np.savez(args.out, **result)


def build_model(spec: dict, num_classes: int):
    from torchvision.models.swin_transformer import SwinTransformer
    return SwinTransformer(patch_size=[spec["patch"]] * 2, embed_dim=spec["embed_dim"],
                           depths=spec["depths"], num_heads=spec["heads"],
                           window_size=[spec["window"]] * 2, stochastic_depth_prob=0.0,
                           num_classes=num_classes)


def train(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    spec = MODELS[args.model]
    r = spec["resolution"]
    torch.manual_seed(args.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = np.load(args.data)
    xtr = torch.from_numpy(data[f"train_{r}"]).to(dev)
    ytr = torch.from_numpy(data["train_y"]).to(dev)
    xte = torch.from_numpy(data[f"test_{r}"]).to(dev)
    yte = torch.from_numpy(data["test_y"]).to(dev)
    mean = torch.tensor(MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=dev).view(1, 3, 1, 1)

    def prep(x: torch.Tensor) -> torch.Tensor:
        return (x.permute(0, 3, 1, 2).float() / 255 - mean) / std

    model = build_model(spec, len(LABELS)).to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    steps_per_epoch = len(xtr) // args.batch
    total = steps_per_epoch * args.epochs
    warmup = steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    def evaluate() -> float:
        model.eval()
        correct = 0
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16):
            for i in range(0, len(xte), 1024):
                correct += (model(prep(xte[i:i + 1024])).argmax(1) == yte[i:i + 1024]).sum().item()
        model.train()
        return correct / len(xte)

    curve = []
    t0 = time.time()
    step = 0
    stopped_early = False
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xtr), device=dev)
        loss_sum, hits = 0.0, 0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            x, y = prep(xtr[idx]), ytr[idx]
            # Flips keep every label; 90-degree turns would swap the frame's squash axis.
            flip = torch.rand(2, device=dev)
            if flip[0] < 0.5:
                x = x.flip(3)
            if flip[1] < 0.5:
                x = x.flip(2)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            loss_sum += loss.item() if i % 50 == 0 else 0.0
            hits += (logits.argmax(1) == y).sum().item() if i % 50 == 0 else 0
        acc = evaluate()
        curve.append({"epoch": epoch + 1, "step": step, "test_acc": round(acc, 4),
                      "elapsed_s": round(time.time() - t0, 1)})
        print(f"{spec['name']} epoch {epoch + 1}/{args.epochs} test_acc {acc:.4f} "
              f"{time.time() - t0:.0f}s", flush=True)
        if time.time() - t0 > args.time_limit_s:
            stopped_early = True
            break
    train_s = time.time() - t0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{spec['name']}.onnx"
    model = model.float().cpu().eval()
    dummy = torch.zeros(1, 3, r, r)
    # The checkpoint, so `edgeswin export` can take the model to other resolutions.
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"{spec['name']}.safetensors"))
    try:
        torch.onnx.export(model, dummy, str(onnx_path), opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamo=False)
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(model, dummy, str(onnx_path), opset_version=17, input_names=["input"],
                          output_names=["logits"])

    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    xs = prep(xte).cpu().numpy()
    ys = yte.cpu().numpy()
    correct, max_diff = 0, 0.0
    with torch.no_grad():
        for i in range(len(xs)):
            logits = sess.run(None, {"input": xs[i:i + 1]})[0]
            correct += int(logits.argmax() == ys[i])
            if i < 64:
                ref = model(torch.from_numpy(xs[i:i + 1])).numpy()
                max_diff = max(max_diff, float(np.abs(ref - logits).max()))
    onnx_acc = correct / len(xs)
    sidecar = {
        "name": spec["name"],
        "labels": list(LABELS),
        "input": {"name": "input", "shape": [1, 3, r, r], "layout": "NCHW", "dtype": "float32",
                  "color": "RGB", "scale": 1 / 255, "mean": list(MEAN), "std": list(STD),
                  "resize": "area"},
        "output": {"name": "logits", "kind": "logits"},
        "precision": "fp32",
        "architecture": {"family": "swin", "definition": "torchvision.models.SwinTransformer",
                         **{k: v for k, v in spec.items() if k != "name"}},
    }
    (out / f"{spec['name']}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    record = {
        "name": spec["name"], "params": params, "device": torch.cuda.get_device_name(0)
        if dev.type == "cuda" else "cpu", "torch": torch.__version__,
        "train_samples": len(xtr), "test_samples": len(xs), "epochs_run": len(curve),
        "epochs_planned": args.epochs, "stopped_early": stopped_early, "batch": args.batch,
        "lr": args.lr, "seed": args.seed, "train_s": round(train_s, 1),
        "onnx_test_acc": round(onnx_acc, 4), "onnx_vs_torch_max_abs_diff": max_diff,
        "onnx_bytes": os.path.getsize(onnx_path), "curve": curve,
    }
    (out / f"{spec['name']}.train.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="generate the scene data set")
    d.add_argument("--out", required=True)
    d.add_argument("--samples", type=int, default=200_000)
    d.add_argument("--test", type=int, default=10_000)
    d.add_argument("--workers", type=int, default=os.cpu_count())
    d.add_argument("--seed", type=int, default=2026)
    t = sub.add_parser("train", help="train one model and export it to ONNX")
    t.add_argument("--data", required=True)
    t.add_argument("--model", choices=sorted(MODELS), required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch", type=int, default=512)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=2026)
    t.add_argument("--time-limit-s", type=float, default=1e9,
                   help="stop after the epoch that crosses this (recorded as stopped_early)")
    args = p.parse_args()
    make_data(args) if args.cmd == "data" else train(args)


if __name__ == "__main__":
    main()

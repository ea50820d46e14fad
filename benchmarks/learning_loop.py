"""The learning loop on the demo, larger than `make test` runs it, in two steps:

    python -m benchmarks.learning_loop collect --out build/loop          # a CPU machine
    python -m benchmarks.learning_loop tune --loop build/loop -o benchmarks/results/learning-loop.json

`collect`: the small demo model serves cameras mounted farther away than it was trained for
(`edgeswin.demo.learning`), in a real daemon with a private mosquitto, keeping its hard
examples; `edgeswin review` is started on them and every frame is decided through the endpoint
the page's buttons post to, with the true label from the video's ground truth (the browser
itself is driven in tests/toolchain/test_learning_loop.py). `tune`: `edgeswin finetune` of both demo
models on the reviewed frames (on the GPU when there is one; the small model twice, to check
that a seed gives the same bytes), then `edgeswin eval` before and after on frames of two other
unseen far videos and on rendered scenes of the kind the models were trained on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from edgeswin.demo.assets import make_image_folder
from edgeswin.demo.learning import far_video, frames_folder, true_label
from edgeswin.files import sha256
from edgeswin.tools.broker import PrivateBroker
from tests.harness import form_token, start_review
from tests.streams import free_port

REPO = Path(__file__).resolve().parent.parent

MODELS = {"swin-demo-64": REPO / "models/swin-demo-64.onnx",
          "swin-demo-112": REPO / "models/swin-demo-112.onnx"}


def edgeswin(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeswin", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def collect(out: Path, videos: int, seconds: float) -> dict:
    out = out.resolve()  # the config names files by absolute path
    out.mkdir(parents=True, exist_ok=True)
    broker = PrivateBroker().start()
    sources = {f"far{i}": far_video(out / f"far-{101 + i}.mp4", seconds, 101 + i, fps=4)
               for i in range(videos)}
    cfg = out / "config"
    (cfg / "cameras").mkdir(parents=True, exist_ok=True)
    (cfg / "edgeswin.yaml").write_text(yaml.safe_dump({
        "device_id": "loop", "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "engines": [{"name": "primary", "model": str(MODELS["swin-demo-64"])}],
        "state_dir": str(out / "state"),
        "hard_examples": {"enabled": True, "below_score": 0.9, "min_interval_s": 0,
                          "keep_files": 100_000}}))
    for name, video in sources.items():
        (cfg / "cameras" / f"{name}.yaml").write_text(yaml.safe_dump(
            {"source": str(video), "fps": 0, "realtime": False}))
    started = time.monotonic()
    daemon = edgeswin("run", "-c", str(cfg))
    log = daemon.communicate()[0]
    broker.close()
    if daemon.returncode != 0:
        raise SystemExit(log[-3000:])
    daemon_s = time.monotonic() - started
    hard = out / "state" / "hard"
    kept = sorted(hard.glob("*/*.jpg"))
    review, address = start_review("--examples", str(hard), "--to", str(out / "reviewed"),
                                   "--labels", ",".join(json.loads(MODELS["swin-demo-64"]
                                                                   .with_suffix(".json")
                                                                   .read_text())["labels"]),
                                   "--port", str(free_port()))
    page = urllib.request.urlopen(address, timeout=10).read().decode()
    csrf = form_token(page)
    started, wrong = time.monotonic(), 0
    for image in kept:
        camera = json.loads(image.with_suffix(".json").read_text())["camera"]
        truth = true_label(image, sources[camera])
        wrong += truth != image.parent.name
        urllib.request.urlopen(urllib.request.Request(
            f"{address}decide", method="POST",
            data=json.dumps({"key": f"{image.parent.name}/{image.name}", "label": truth}).encode(),
            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf}), timeout=30).read()
    review_s = time.monotonic() - started
    review.terminate()
    review.communicate()
    frames = int(videos * seconds * 4)
    summary = {"videos": videos, "frames": frames, "hard_examples": len(kept),
               "model_was_wrong": wrong, "daemon_s": round(daemon_s, 1),
               "decisions_s": round(review_s, 1)}
    (out / "collect.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def tune(loop: Path, epochs: int, device: str | None) -> dict:
    import torch

    from edgeswin.toolchain.evaluate import evaluate
    from edgeswin.toolchain.finetune import Training, finetune

    data = loop / "data"
    base = make_image_folder(data / "base", 80, seed=5, width=320, height=180)
    near = make_image_folder(data / "near", 50, seed=6, width=320, height=180)
    unseen = data / "far-unseen"
    for seed in (202, 203):
        frames_folder(far_video(data / f"far-{seed}.mp4", 120, seed, fps=4), unseen)
    result = {"collect": json.loads((loop / "collect.json").read_text()),
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "epochs": epochs,
              "eval_images": {"far_unseen": len(list(unseen.glob("*/*.png"))),
                              "near": len(list(near.glob("*/*.png")))}, "models": {}}
    for name, model in MODELS.items():
        runs = []
        for attempt in range(2 if name == "swin-demo-64" else 1):
            out = loop / "tuned" / f"{name}-finetuned-{attempt}.onnx"
            tuned = finetune(model, loop / "reviewed", out, base,
                             Training(epochs=epochs, holdout=0.1, flips="hv", device=device),
                             progress=lambda m: print(m, flush=True))
            runs.append((out, tuned))
        out, tuned = runs[0]
        row = {"finetune_s": tuned.seconds, "images": tuned.images,
               "held_out_top1": {"before": tuned.before["held_out"]["top1"],
                                 "after": tuned.after["held_out"]["top1"]}}
        if len(runs) > 1:
            row["same_bytes_for_the_same_seed"] = sha256(runs[0][0]) == sha256(runs[1][0])
        for split, folder in (("far_unseen", unseen), ("near", near)):
            row[split] = {"before": evaluate(model, folder).top1,
                          "after": evaluate(out, folder).top1}
        result["models"][name] = row
        print(json.dumps({name: row}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", type=Path, default=REPO / "build" / "loop")
    c.add_argument("--videos", type=int, default=3)
    c.add_argument("--seconds", type=float, default=240.0)
    t = sub.add_parser("tune")
    t.add_argument("--loop", type=Path, default=REPO / "build" / "loop")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--device")
    t.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.step == "collect":
        shutil.rmtree(args.out / "state", ignore_errors=True)
        shutil.rmtree(args.out / "reviewed", ignore_errors=True)
        print(json.dumps(collect(args.out, args.videos, args.seconds)))
        return
    result = tune(args.loop, args.epochs, args.device)
    text = json.dumps(result, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

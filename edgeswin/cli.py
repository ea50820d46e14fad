"""Command line: `edgeswin run | check | demo | rollback | relearn | watch | fleet | review |
finetune | fallback-sim | probe | snapshot | bench | eval | export | quantize | build-engine`
(also `python -m edgeswin`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .config import load_config
from .errors import ConfigError, EdgeswinError
from .service import hangup
from .service.notify import setup_logging

log = logging.getLogger("edgeswin")
LOG_LEVELS = ["debug", "info", "warning", "error"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, where there is one to show and the text does not give it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return action.help
        return super()._get_help_string(action)


def cmd_check(args: argparse.Namespace) -> int:
    from .prestart import report
    return report(load_config(args.config), args.config)


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon
    from .prestart import check_rungs
    config = load_config(args.config)
    check_rungs(config, log_skipped=True)  # nothing can serve: ConfigError, exit 1
    return Daemon(config).run()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.live import run_demo
    return run_demo(args.config, args.seconds, args.prepare)


def cmd_rollback(args: argparse.Namespace) -> int:
    request: dict = {"command": "rollback"}
    if args.rung is not None:
        request["rung"] = args.rung
    return _ask(args, request)


def cmd_relearn(args: argparse.Namespace) -> int:
    return _ask(args, {"command": "relearn", "cameras": args.cameras or None})


def _ask(args: argparse.Namespace, request: dict) -> int:
    """A request to the running daemon through its control socket; its answer printed."""
    from .service.control import ask, state_dir_of
    answer = ask(state_dir_of(args.config), request, args.timeout)
    print(answer.get("message", answer), file=sys.stdout if answer.get("ok") else sys.stderr)
    return 0 if answer.get("ok") else 1


def cmd_fallback_sim(args: argparse.Namespace) -> int:
    from .classify.schedule import settings_adjustable
    from .config import FallbackConfig, dla_twins
    from .tools.probe import simulate

    options: dict = {}
    if args.config:
        config = load_config(args.config)
        device = config.device
        cfg, rungs = device.fallback, len(device.engines)
        adjustable = settings_adjustable(unit for e in config.cameras if e.config.enabled
                                         for unit in e.config.units())
        options = {"fps_steps": cfg.fps_steps if adjustable else 0,
                   "twins": dla_twins(device.engines), "total_rails": device.power.total_rails}
    else:
        cfg, rungs = FallbackConfig(), args.rungs
    try:
        print("\n".join(simulate(args.trace, cfg, rungs, **options)))
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeswinError(f"cannot replay {args.trace}: {exc}") from None
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from .tools.probe import grab_snapshot
    print("\n".join(grab_snapshot(args.config, args.camera, args.output)))
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from .engine.build import build_engine

    target = args.precision if args.dla_core is None else f"{args.precision}-dla{args.dla_core}"
    out = args.output or args.model.with_name(f"{args.model.stem}-{target}.engine")
    build_engine(args.model, out, args.precision, workspace_mb=args.workspace_mb,
                 dla_core=args.dla_core,
                 timing_cache=args.timing_cache, optimization_level=args.opt_level,
                 progress=lambda message: print(message, flush=True))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from .demo.assets import default_demo_model
    from .tools.bench import bench_video, run_bench

    model = args.model or default_demo_model()
    if model is None:
        raise EdgeswinError("no bundled demo model found: pass --model PATH.onnx")
    try:  # before anything is generated
        cameras = [int(n) for n in args.cameras.split(",")]
    except ValueError:
        cameras = []
    if not cameras or not all(1 <= n <= 64 for n in cameras):
        raise EdgeswinError(f"--cameras: comma-separated camera counts from 1 to 64, e.g. "
                            f"1,2,4, not {args.cameras!r}")
    video = args.video or bench_video(Path("build/bench/bench-640x360.mp4"),
                                      lambda message: print(message, flush=True))
    video = video.resolve()
    model = model.resolve()
    if args.engine_ms:
        from .tools.bench import run_engine_sweep
        try:
            costs = [float(x) for x in args.engine_ms.split(",")]
        except ValueError:
            raise EdgeswinError(f"--engine-ms: comma-separated numbers of ms, not "
                                f"{args.engine_ms!r}") from None
        if not all(0 <= x <= 1000 for x in costs):
            raise EdgeswinError("--engine-ms: each cost from 0 to 1000 ms")
        report = run_engine_sweep(model, video, costs, cameras, args.seconds, args.broker_port,
                                  progress=lambda message: print(message, flush=True))
    else:
        report = run_bench(model, video, cameras, args.seconds, args.threads,
                           args.broker_port, progress=lambda message: print(message, flush=True),
                           repeats=args.rounds)
    text = json.dumps(report, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from .toolchain.evaluate import evaluate
    result = evaluate(args.model, args.data, args.reference, args.limit)
    print(json.dumps(result.as_dict(), indent=1))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from .toolchain.export import export
    labels: tuple[str, ...] = ()
    if args.labels:
        try:
            labels = tuple(line.strip() for line in args.labels.read_text().splitlines()
                           if line.strip())
        except OSError as exc:
            raise EdgeswinError(f"cannot read --labels: {exc}") from None
    result = export(args.arch, args.output, args.checkpoint, args.num_classes, labels,
                    args.resolution, args.opset, args.fused_preprocess, args.check_images,
                    args.tolerance, progress=lambda message: print(message, flush=True))
    print(json.dumps(result.as_dict(), indent=1))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .toolchain.quantize import quantize
    out = args.output or args.model.with_name(f"{args.model.stem}-int8.onnx")
    quantize(args.model, args.calibration, out, args.eval_data or args.calibration,
             args.method, tuple(o for o in args.ops.split(",") if o), args.min_agreement, args.limit,
             progress=lambda message: print(message, flush=True))
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from .demo.assets import default_demo_model, demo_model_places
    from .tools.probe import probe, selftest
    if not args.selftest:
        print("\n".join(probe(args.config)))
        return 0
    model = args.model or default_demo_model()
    if model is None:
        raise EdgeswinError("no bundled demo model in " + ", ".join(map(str, demo_model_places()))
                            + ": pass --model PATH.onnx")
    lines, ok = selftest(model)
    print("\n".join(lines))
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    # Long: one declaration per subcommand and option, in the order `--help` shows them.
    parser = argparse.ArgumentParser(prog="edgeswin", description="Camera classification "
                                     "daemon: OpenCV capture -> Swin engine -> MQTT.",
                                     formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"edgeswin {__version__}")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS,
                        help="before or after the verb")
    # The same option after the verb: SUPPRESS leaves the one before it alone when absent.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS,
                        help="how much to log (default: info)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common],
                              formatter_class=_Help, **kwargs)
    run = add("run", help="run the daemon")
    run.add_argument("-c", "--config", default="/etc/edgeswin", type=Path,
                     help="config directory: edgeswin.yaml + cameras/*.yaml")
    run.set_defaults(func=cmd_run)
    check = add("check", help="validate a config directory; exit 1 on any error")
    check.add_argument("-c", "--config", default="/etc/edgeswin", type=Path,
                       help="config directory: edgeswin.yaml + cameras/*.yaml")
    check.set_defaults(func=cmd_check)
    demo = add("demo", help="run the daemon on the bundled demo assets")
    demo.add_argument("-c", "--config", type=Path, help="config directory (default: the "
                      "bundled configs/demo, found from the package); its cameras' missing "
                      "videos are generated where they point")
    demo.add_argument("--seconds", type=float, default=30.0, help="length of generated videos")
    demo.add_argument("--prepare", action="store_true", help="only make the missing videos "
                      "and check the config, then exit (what `make check` needs)")
    demo.set_defaults(func=cmd_demo)
    back = add("rollback", help="ask the running daemon to serve a rung's previous "
               "model again (after a model rollout)")
    back.add_argument("-c", "--config", default="/etc/edgeswin", type=Path,
                      help="the running daemon's config directory (for its state_dir)")
    back.add_argument("--rung", type=int, help="the rung (default: the one of the latest "
                      "rollout, else 0)")
    back.add_argument("--timeout", type=float, default=600.0,
                      help="seconds to wait for the daemon to answer (opening a model)")
    back.set_defaults(func=cmd_rollback)
    relearn = add("relearn", help="ask the running daemon to forget what cameras' health "
                  "learned (normal, reference view, drift baseline) and learn it again from "
                  "now: after a camera was moved or its scene changed on purpose")
    relearn.add_argument("cameras", nargs="*", help="camera names (default: every camera)")
    relearn.add_argument("-c", "--config", default="/etc/edgeswin", type=Path,
                         help="the running daemon's config directory (for its state_dir)")
    relearn.add_argument("--timeout", type=float, default=30.0,
                         help="seconds to wait for the daemon to answer")
    relearn.set_defaults(func=cmd_relearn)
    from .watch import command as watching
    watch = add("watch", help="watch many devices through the broker: status, cameras, "
                "health, canary, stats; --once exits 1 when anything is wrong or silent")
    watching.add_arguments(watch)
    watch.set_defaults(func=watching.run)
    from .fleet import operator
    fleet = add("fleet", help="a fleet on your broker: keygen, push a signed config, status")
    operator.add_arguments(fleet)
    fleet.set_defaults(func=operator.run)
    from .review import command as reviewing
    review = add("review", help="a local web page to confirm, relabel or discard the hard "
                 "examples a device kept; decisions make a labelled folder")
    reviewing.add_arguments(review)
    review.set_defaults(func=reviewing.run)
    from .toolchain import finetune_command
    tune = add("finetune", help="fine-tune a model on confirmed frames (plus a sample of the "
               "original data); prints held-out top-1 before and after (needs the toolchain)")
    finetune_command.add_arguments(tune)
    tune.set_defaults(func=finetune_command.run)
    sim = add("fallback-sim", help="replay a sensor trace through the fallback "
              "levers (fps, rung, dla, power_mode)")
    sim.add_argument("--trace", required=True, type=Path,
                     help="CSV: t, latency_p95_ms, one column per thermal zone (C), one per "
                          "power rail in watts named <rail>_w")
    sim.add_argument("-c", "--config", type=Path, help="take fallback settings from this config")
    sim.add_argument("--rungs", type=int, default=2, help="ladder length without -c")
    sim.set_defaults(func=cmd_fallback_sim)
    ev = add("eval", help="top-1/top-5 on a labelled image folder, agreement with "
             "a reference model, batch-1 latency")
    ev.add_argument("model", type=Path, help=".onnx or .engine, with its sidecar")
    ev.add_argument("--data", type=Path, required=True, help="labelled images: "
                    "folder/<label>/*.{png,jpg,jpeg,bmp,webp}")
    ev.add_argument("--reference", type=Path, help="e.g. the FP32 ONNX")
    ev.add_argument("--limit", type=int, help="use at most this many images")
    ev.set_defaults(func=cmd_eval)
    ex = add("export", help="a trained Swin (torchvision/timm, optional checkpoint) "
             "-> static batch-1 ONNX + sidecar, checked against PyTorch (needs the "
             "toolchain extra: torch, torchvision, timm)")
    ex.add_argument("arch", help="swin_t|swin_s|swin_b|swin_v2_t|swin_v2_s|swin_v2_b, "
                    "timm:<name>, or a sidecar .json with an architecture block")
    ex.add_argument("-o", "--output", type=Path, required=True, help="the .onnx to write")
    ex.add_argument("--checkpoint", type=Path, help=".pth/.pt state dict or .safetensors")
    ex.add_argument("--num-classes", type=int, help="default: the labels, the checkpoint's "
                    "head, or 1000")
    ex.add_argument("--labels", type=Path, help="text file, one label per line")
    ex.add_argument("--resolution", type=int, help="square input size (default: the "
                    "architecture's own, 224 for the named ones)")
    ex.add_argument("--opset", type=int, choices=[16, 17], default=17,
                    help="17 for TensorRT >= 8.6; 16 for TensorRT 8.5 parsers")
    ex.add_argument("--fused-preprocess", action="store_true", help="the graph takes uint8 "
                    "1xHxWx3 BGR and normalises itself; the daemon only resizes")
    ex.add_argument("--check-images", type=Path, help="folder of real images for the parity "
                    "check (default: rendered scenes)")
    ex.add_argument("--tolerance", type=float, default=1e-3,
                    help="max |ONNX Runtime - PyTorch| accepted")
    ex.set_defaults(func=cmd_export)
    qz = add("quantize", help="INT8 Q/DQ for TensorRT, calibrated on images, gated "
             "on agreement with FP32")
    qz.add_argument("model", type=Path, help="the FP32 .onnx, with its sidecar")
    qz.add_argument("--calibration", type=Path, required=True, help="folder of images")
    qz.add_argument("--eval-data", type=Path, help="labelled folder for the gate (default: "
                    "the calibration folder; a held-out one is better)")
    qz.add_argument("-o", "--output", type=Path, help="default: <model>-int8.onnx")
    qz.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax",
                    help="calibration method (models/README.md compares them)")
    qz.add_argument("--ops", default="Conv,MatMul,Gemm", help="op types to quantize; the rest "
                    "(LayerNorm, Softmax, GELU, Add) stays in higher precision")
    qz.add_argument("--min-agreement", type=float, default=0.98,
                    help="top-1 agreement with the FP32 model that INT8 must reach, or no file")
    qz.add_argument("--limit", type=int, default=200, help="calibration images to use")
    qz.set_defaults(func=cmd_quantize)
    build = add("build-engine", help="build a TensorRT engine from an ONNX model "
                "on this device (needs TensorRT and pycuda)")
    build.add_argument("model", type=Path, help="the .onnx, with its sidecar .json beside it")
    build.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16",
                       help="int8 needs a Q/DQ model from `edgeswin quantize`")
    build.add_argument("-o", "--output", type=Path, help="default: <model>-<precision>.engine")
    build.add_argument("--timing-cache", type=Path, help="read and update this timing cache")
    build.add_argument("--workspace-mb", type=int, default=1024,
                       help="builder workspace (at most half the free GPU memory is used)")
    build.add_argument("--dla-core", type=int, choices=[0, 1], help="build for this DLA core "
                       "(unsupported layers on the GPU); without one, for the GPU with a warning")
    build.add_argument("--opt-level", type=int, choices=range(0, 6), default=None,
                       help="builder optimisation level (TensorRT default 3)")
    build.set_defaults(func=cmd_build_engine)
    bench = add("bench", help="measure the daemon against the raw engine "
                "(throughput, latency breakdown, preprocessing, MQTT rate)")
    bench.add_argument("--model", type=Path, help="ONNX model (default: the bundled demo)")
    bench.add_argument("--video", type=Path, help="video to read (default: a generated one)")
    bench.add_argument("--cameras", default="1,2,4,8", help="comma-separated camera counts "
                       "to run, each 1-64")
    bench.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    bench.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                       help="engine threads; the other cores decode (default: cores - 1)")
    bench.add_argument("--broker-port", type=int, help="a broker on 127.0.0.1 (default: "
                       "start a private mosquitto)")
    bench.add_argument("--rounds", type=int, default=3, help="alternating rounds of the "
                       "single-stream runs (the median is kept)")
    bench.add_argument("--engine-ms", help="comma-separated engine costs in ms (e.g. "
                       "0,1,2,5,10,20): instead of the model, a synthetic engine that holds "
                       "the inference thread that long without the GIL, as a GPU engine does; "
                       "charts the daemon and the serial loop against engine cost")
    bench.add_argument("-o", "--output", type=Path, help="also write the JSON report here")
    bench.set_defaults(func=cmd_bench)
    snap = add("snapshot", help="grab one frame of a camera with its regions and "
               "their classification drawn (to place region boxes by looking)")
    snap.add_argument("-c", "--config", default="/etc/edgeswin", type=Path,
                      help="config directory: edgeswin.yaml + cameras/*.yaml")
    snap.add_argument("camera", help="the camera's name")
    snap.add_argument("-o", "--output", type=Path, default=Path("snapshot.jpg"),
                      help="where to write the JPEG (default: snapshot.jpg)")
    snap.set_defaults(func=cmd_snapshot)
    probe = add("probe", help="list thermal zones, camera devices and back-ends")
    probe.add_argument("-c", "--config", type=Path, help="show which zones this config selects")
    probe.add_argument("--selftest", action="store_true",
                       help="also run the demo model through ONNX Runtime and (if present) a "
                            "TensorRT engine built here; compare, time, print a verdict")
    probe.add_argument("--model", type=Path, help="the ONNX for --selftest (default: bundled)")
    probe.set_defaults(func=cmd_probe)
    return parser


def main(argv: list[str] | None = None) -> int:
    hangup.hold()  # a reload asked for while starting must not end the process
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"{len(exc.issues)} config error(s):\n{exc}", file=sys.stderr)
        return 1
    except EdgeswinError as exc:
        print(f"edgeswin: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the user named: the message says which
        print(f"edgeswin: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a fault of edgeswin: one line here, the traceback in the log
        log.log(logging.ERROR if args.command == "run" else logging.DEBUG,
                "%s failed", args.command, exc_info=True)
        print(f"edgeswin: error: {type(exc).__name__}: {exc} (an internal error: "
              f"--log-level debug shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Refresh the tables of benchmarks/RESULTS.md from the results files they come from, and redraw
the plots. The prose of RESULTS.md is written by hand; only a block between
`<!-- table NAME ... -->` and `<!-- end table -->` is generated, by `TABLES[NAME]`.

    python -m benchmarks.report           # refresh the tables and the plots ([bench] extra)
    python -m benchmarks.report --check   # exit 1 when a table differs from its results file
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BLOCK = re.compile(r"(<!-- table (\S+)[^\n]*-->\n)(.*?)(<!-- end table -->)", re.S)


def plot(report: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = report["raw_engine"]["fps"]
    runs = report["daemon"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar([str(d["cameras"]) for d in runs], [d["fps"] for d in runs], color="#4477aa",
             label="daemon, aggregate")
    left.axhline(raw, color="black", linestyle="--", label=f"raw engine {raw:.1f}/s")
    left.axhline(0.9 * raw, color="grey", linestyle=":", label="0.90 x raw")
    left.axhline(report["serial_loop"]["fps"], color="#cc6677", linestyle="-.",
                 label=f"serial loop {report['serial_loop']['fps']:.1f}/s")
    left.set_xlabel("cameras")
    left.set_ylabel("classifications per second")
    left.set_title("Throughput: daemon vs raw engine")
    left.legend(fontsize=8, loc="lower right")
    live = report["latency_realtime_1cam"]["latency_ms"]
    stages = [k for k in ("decode", "wait", "preprocess", "inference", "postprocess") if k in live]
    right.barh(stages, [live[k]["p50"] for k in stages], color="#228833", label="p50")
    right.barh(stages, [live[k]["p95"] - live[k]["p50"] for k in stages],
               left=[live[k]["p50"] for k in stages], color="#bbbbbb", label="p95")
    right.set_xlabel("ms")
    right.set_title("Latency breakdown, 1 camera at its own rate")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def sweep_plot(path: Path, out: Path) -> None:
    """Daemon throughput against engine cost, beside the serial loop and the engine alone."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = json.loads(path.read_text())
    rows = r["engine_sweep"]
    ms = [row["engine_ms"] for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(ms[1:], [row["raw_fps"] for row in rows[1:]], "k--", label="engine alone")
    ax.plot(ms, [row["serial_fps"] for row in rows], "o-", color="#cc6677",
            label="serial loop (1 camera)")
    for n, colour in zip(rows[0]["daemon"], ("#4477aa", "#228833", "#ccbb44")):
        ax.plot(ms, [row["daemon"][n]["fps"] for row in rows], "s-", color=colour,
                label=f"daemon, {n} camera(s)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log")
    ax.set_xticks(ms, [f"{m:g}" for m in ms])
    ax.set_xlabel("engine time per inference, ms (GIL released, as a GPU engine)")
    ax.set_ylabel("classifications per second")
    ax.set_title(f"The daemon around an engine that only waits ({r['machine']['cores']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def throughput() -> str:
    report = _json("bench-cpu.json")
    raw = report["raw_engine"]
    rows = "\n".join(
        f"| {d['cameras']} | {d['fps']:.1f} | {d['fps'] / raw['fps']:.3f} | "
        f"{d['engine_busy_fraction']:.3f} | {d['latency_ms']['capture_to_publish']['p50']:.1f} |"
        for d in report["daemon"])
    return ("| cameras | daemon /s (aggregate) | vs raw | engine busy | capture-to-publish p50 ms |\n"
            "|---|---|---|---|---|\n" + rows)


def latency_stages() -> str:
    live = _json("bench-cpu.json")["latency_realtime_1cam"]
    return "| stage | p50 ms | p95 ms |\n|---|---|---|\n" + "\n".join(
        f"| {k} | {v['p50']:.2f} | {v['p95']:.2f} |" for k, v in live["latency_ms"].items())


def soak() -> str:
    g = _json("soak-30min.json")["growth_after_warmup"]
    rss, fds, threads, box = g["rss_mb"], g["fds"], g["threads"], g["outbox_depth"]
    return f"""| | first | last | min | max | trend per hour |
|---|---|---|---|---|---|
| RSS MB | {rss['first']:.1f} | {rss['last']:.1f} | {rss['min']:.1f} | {rss['max']:.1f} | {rss['slope_per_hour']:+.1f} |
| open fds | {fds['first']:.0f} | {fds['last']:.0f} | {fds['min']:.0f} | {fds['max']:.0f} | {fds['slope_per_hour']:+.2f} |
| threads | {threads['first']:.0f} | {threads['last']:.0f} | {threads['min']:.0f} | {threads['max']:.0f} | {threads['slope_per_hour']:+.2f} |
| outbox depth | {box['first']:.0f} | {box['last']:.0f} | {box['min']:.0f} | {box['max']:.0f} | drains after each restart |"""


def goals_before_after() -> str:
    """The free engine from the engine sweeps, the demo model from the full bench runs."""
    rows = []
    for when, name in (("before", "engine-sweep-cpu-before.json"),
                       ("after", "engine-sweep-cpu.json")):
        free = _json(name)["engine_sweep"][0]
        cells = {n: f"{d['fps']:,.0f}/s ({d['vs_serial']:.2f}x serial)"
                 for n, d in free["daemon"].items()}
        rows.append(f"| free engine, {when} | {free['serial_fps']:,.0f}/s | "
                    + " | ".join(cells.get(str(n), "-") for n in (1, 2, 4, 8)) + " |")
    for when, name in (("before", "bench-cpu-before.json"), ("after", "bench-cpu.json")):
        bench = _json(name)
        raw = bench["raw_engine"]["fps"]
        cells = {d["cameras"]: f"{d['fps'] / raw:.3f} of raw" for d in bench["daemon"]}
        rows.append(f"| {bench['model'].removesuffix('.onnx')} (raw {raw:.0f}/s), {when} | "
                    f"{bench['serial_loop']['fps']:.0f}/s | "
                    + " | ".join(cells.get(n, "-") for n in (1, 2, 4, 8)) + " |")
    return ("| engine | serial loop | daemon 1 cam | daemon 2 cams | daemon 4 cams | daemon 8 cams |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows))


def finisher() -> str:
    ab = _json("finisher-ab.json")
    rows = []
    for engine, cams in ab["summary"].items():
        name = "demo model (ONNX Runtime, 1 thread)" if engine == "demo" \
            else f"synthetic {float(engine):g} ms"
        for n, modes in cams.items():
            loop, fin = modes["loop"], modes["finisher"]
            # Trials alone leave a few hundredths of a ms per classification on its thread.
            used = sum(r["thread_cpu_ms_per_classification"].get("finisher", 0) >= 0.05
                       for r in ab["runs"][engine][n]["finisher"])
            rows.append(f"| {name} | {n} | {loop['fps_median']:,.0f} / {loop['vs_raw_median']:.3f}"
                        f" / {loop['busy_median']:.3f} | {fin['fps_median']:,.0f} / "
                        f"{fin['vs_raw_median']:.3f} / {fin['busy_median']:.3f} | "
                        f"{used} of {ab['rounds']} | "
                        f"{fin['fps_median'] / loop['fps_median']:.3f} | "
                        f"{loop['cpu_ms_median']:.2f} -> {fin['cpu_ms_median']:.2f} |")
    return ("| engine | cameras | on the loop: /s / of raw / engine busy | with the finisher | "
            "rounds handing off | finisher / loop | host CPU ms per classification |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows))


def sweep() -> str:
    """`edgeswin bench --engine-ms`: the daemon around an engine that only waits."""
    r = _json("engine-sweep-cpu.json")
    counts = list(r["engine_sweep"][0]["daemon"])
    head = " | ".join(f"daemon {n} cam: /s (x serial, x engine), host CPU ms" for n in counts)
    rows = []
    for row in r["engine_sweep"]:
        cells = []
        for n in counts:
            d = row["daemon"][n]
            vs_raw = f"{d['vs_raw']:.2f}" if row["engine_ms"] else "-"
            cells.append(f"{d['fps']:.0f} ({d['vs_serial']:.2f}, {vs_raw}), "
                         f"{d['host_cpu_ms_per_classification']:.2f}")
        raw = f"{row['raw_fps']:.0f}" if row["engine_ms"] else "free"
        rows.append(f"| {row['engine_ms']:g} | {raw} | {row['serial_fps']:.0f} "
                    f"({row['serial_cpu_ms_per_frame']:.2f}, {row['serial_cores_used']:.2f}) | "
                    + " | ".join(cells) + " |")
    return (f"| engine ms | engine alone /s | serial loop /s (CPU ms, cores) | {head} |\n"
            f"|---|---|---|{'---|' * len(counts)}\n" + "\n".join(rows))


def sweep_threads() -> str:
    """Where the host CPU goes with the free engine, by kind of thread."""
    free = _json("engine-sweep-cpu.json")["engine_sweep"][0]
    counts = list(free["daemon"])
    where = "\n".join(
        f"| {kind} | " + " | ".join(
            f"{free['daemon'][n]['thread_cpu_ms_per_classification'].get(kind, 0):.2f}"
            for n in counts) + " |" for kind in ("capture", "native", "inference loop", "mqtt"))
    totals = " | ".join(f"{free['daemon'][n]['host_cpu_ms_per_classification']:.2f} "
                        f"({free['daemon'][n]['cores_used']:.2f} cores)" for n in counts)
    return (f"| thread | {' | '.join(f'daemon {n} cam' for n in counts)} |\n"
            f"|---|{'---|' * len(counts)}\n{where}\n| all (cores busy) | {totals} |")


def sweep_before_after() -> str:
    """The engine sweep before a round's changes and after, on one machine, back to back."""
    b, a = _json("engine-sweep-cpu-before.json"), _json("engine-sweep-cpu.json")
    counts = list(a["engine_sweep"][0]["daemon"])
    rows = []
    for rb, ra in zip(b["engine_sweep"], a["engine_sweep"]):
        cells = []
        for n in counts:
            db, da = rb["daemon"][n], ra["daemon"][n]
            cells.append(f"{db['fps']:.0f} ({db['vs_serial']:.2f}) -> {da['fps']:.0f} "
                         f"({da['vs_serial']:.2f})")
            cells.append(f"{db['host_cpu_ms_per_classification']:.2f} -> "
                         f"{da['host_cpu_ms_per_classification']:.2f}")
        rows.append(f"| {ra['engine_ms']:g} | {rb['serial_fps']:.0f} -> {ra['serial_fps']:.0f} | "
                    + " | ".join(cells) + " |")
    head = " | ".join(f"daemon {n} cam /s (x serial) | host CPU ms" for n in counts)
    return (f"| engine ms | serial loop /s | {head} |\n"
            f"|---|---|{'---|---|' * len(counts)}\n" + "\n".join(rows))


def decode() -> str:
    """A 1080p H.264 RTSP camera, FFmpeg against GStreamer (`decode_study`)."""
    r = _json("decode-study.json")
    rows = "\n".join(
        f"| {name} | {'x'.join(str(v) for v in row['shape'][1::-1])} | "
        f"{row['cpu_ms_per_stream_second']:.0f} ({row['x_ffmpeg']:.2f}) | "
        f"{row['cpu_ms_per_frame']:.1f} | {row['preprocess_cpu_ms_per_frame']:.2f} | "
        f"{row['fps']:.1f} |"
        for name, row in r["median"].items())
    return ("| decoder | frame | CPU ms per second of stream (x FFmpeg) | CPU ms per frame | "
            "of which preprocessing | frames/s handed over |\n|---|---|---|---|---|---|\n" + rows)


def gpu_preprocess() -> str:
    """The preprocessing kernel against the CPU on a real GPU (`gpu_check`)."""
    prep = _json("gpu_check-h200.json")["gpu_preprocess"]["demo112_nchw_rgb_f32"]
    return f"""| | 1080p p50 ms | 4K p50 ms |
|---|---|---|
| GPU, frame copied to the device | {prep['copy']['1080p_gpu_ready']['median_ms']:.2f} | {prep['copy']['4k_gpu_ready']['median_ms']:.2f} |
| GPU, mapped page-locked memory (a Jetson's way) | {prep['mapped']['1080p_gpu_ready']['median_ms']:.2f} | {prep['mapped']['4k_gpu_ready']['median_ms']:.2f} |
| CPU (`preprocess.py`) | {prep['1080p_cpu']['median_ms']:.2f} | {prep['4k_cpu']['median_ms']:.2f} |"""


def house_ab(results: str = "house-ab.json") -> str:
    """The same bench before and after a change to the code's layout, rounds alternating."""
    from statistics import median
    runs = _json(results)["runs"]
    lines = []
    for i, row in enumerate(runs["after"][0]["engine_sweep"]):
        for n in row["daemon"]:
            cells = []
            for side in ("before", "after"):
                sweeps = [r["engine_sweep"][i] for r in runs[side]]
                ds = [sw["daemon"][n] for sw in sweeps]
                rates = ", ".join(f"{d['fps']:.0f}" for d in ds)
                cpu = ", ".join(f"{d['host_cpu_ms_per_classification']:.2f}" for d in ds)
                of_engine = median(d["vs_raw"] for d in ds)
                x_serial = median(d["host_cpu_ms_per_classification"] / sw["serial_cpu_ms_per_frame"]
                                  for d, sw in zip(ds, sweeps))
                cells += [f"{rates} ({of_engine:.3f})", f"{cpu} ({x_serial:.2f}x)"]
            lines.append(f"| {row['engine_ms']:g} | {n} | " + " | ".join(cells) + " |")
    return ("| engine ms | cameras | before: /s (of engine, median) | before: host CPU ms per "
            "classification (x serial loop, median) | after: /s | after: host CPU ms |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines))


# Each generated table of RESULTS.md: its name in the block's marker, and what makes it.
TABLES = {
    "throughput": throughput,
    "latency-stages": latency_stages,
    "soak": soak,
    "goals-before-after": goals_before_after,
    "finisher": finisher,
    "engine-sweep": sweep,
    "engine-sweep-threads": sweep_threads,
    "engine-sweep-before-after": sweep_before_after,
    "decode": decode,
    "gpu-preprocess": gpu_preprocess,
    "house-ab": house_ab,
    "house-ab-3": lambda: house_ab("house-ab-3.json"),
    "acks-ab": lambda: house_ab("acks-ab.json"),
}


def refreshed(text: str) -> tuple[str, list[str]]:
    """RESULTS.md with every marked table made again; the names of those that changed."""
    changed = []

    def one(match: re.Match) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise SystemExit(f"RESULTS.md marks a table {name!r} that report.py does not make")
        table = TABLES[name]() + "\n"
        if table != match.group(3):
            changed.append(name)
        return match.group(1) + table + match.group(4)

    return BLOCK.sub(one, text), changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 when a table differs from its results file")
    args = ap.parse_args()
    path = HERE / "RESULTS.md"
    text, changed = refreshed(path.read_text())
    if args.check:
        for name in changed:
            print(f"RESULTS.md: table {name} differs from its results file")
        return 1 if changed else 0
    try:
        plot(_json("bench-cpu.json"), RESULTS / "bench-cpu.png")
        sweep_plot(RESULTS / "engine-sweep-cpu.json", RESULTS / "engine-sweep-cpu.png")
    except ImportError as exc:  # matplotlib is not a project dependency
        print(f"plots not redrawn ({exc}); the .png files are kept as they are")
    path.write_text(text)
    print(f"{len(changed)} table(s) of {path} refreshed: {', '.join(changed) or 'none changed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of the course: each lab's heavy calls, seconds and peak memory, on Lite0 and VGG16.

Run on demand (not part of the tests), one command::

    .venv/bin/python benchmarks/bench_course.py --threads 1            # writes benchmarks/results/course.md
    .venv/bin/python benchmarks/bench_course.py --threads 1 --readme   # ... and the README's table

For every model (``efficientnet_lite0`` with its bundled weights, ``vgg16`` with random weights,
``pretrained=False``: time and memory do not depend on the weight values) and every call below, a
fresh subprocess loads the model, runs the call once and reports wall seconds, CPU seconds and its
peak resident memory (``ru_maxrss``, so the peak is that call's own, model and torch included).
Where the course handouts have their own method, it runs the same way next to labkit's:

* lab 1 (saliency, 2 photos): vanilla gradient (handout: a per-image loop with ``.backward()`` on an
  unfrozen model), guided backprop, Grad-CAM, SmoothGrad (25 samples), integrated gradients
  (50 steps), occlusion (window 32, stride 16), sanity check (vanilla gradient, 4 randomisation steps);
* lab 2 (feature visualisation): the lab's mid layer and channels, 30 steps at 224 px,
  ``visualize(preset="handout")`` against the Duke handout loop (one channel at a time, full forward,
  weights not frozen);
* lab 4: the quantisation sweep at 8, 4 and 2 bits on the shipped photos (predictions and SNR,
  without the feature visualisations);
* lab 5: the weight explorer of the lab's unit (6 strongest input kernels, their channels and the
  unit visualised, 64 steps at 128 px).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("efficientnet_lite0", "vgg16")


# --------------------------------------------------------------------------- the calls (child side)


def _photos(model, n=2):
    from labkit.images import preprocess

    return preprocess(["cat", "dog", "bee", "coffee"][:n], model)


def _targets(model, x):
    import torch

    with torch.no_grad():
        return model(x).argmax(dim=1)


def handout_vanilla(model, x, target):
    """The Duke handout's saliency: one image at a time, ``requires_grad`` input, ``.backward()`` on
    the class score of a model whose weights are not frozen, max |grad| over colours."""
    import torch

    for p in model.parameters():
        p.requires_grad_(True)
    maps = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1].clone().requires_grad_(True)
        model.zero_grad()
        model(xi)[0, int(target[i])].backward()
        maps.append(xi.grad.abs().amax(dim=1))
    return torch.cat(maps)


def _call(name: str, model):
    """Run the named call once on ``model``; returns a short note on what was computed."""
    from course.roles import roles_for
    from labkit import featurevis, saliency

    roles = roles_for(model)
    if name.startswith("saliency"):
        x = _photos(model)
        t = _targets(model, x)
        kind = name.split(":", 1)[1]
        if kind == "handout vanilla":
            handout_vanilla(model, x, t)
        elif kind == "vanilla":
            saliency.vanilla(model, x, t)
        elif kind == "guided backprop":
            saliency.guided_backprop(model, x, t)
        elif kind == "Grad-CAM":
            saliency.grad_cam(model, x, t)
        elif kind == "SmoothGrad":
            saliency.smoothgrad(model, x, t, samples=25, seed=0, progress=False)
        elif kind == "integrated gradients":
            saliency.integrated_gradients(model, x, t, steps=50, progress=False)
        elif kind == "occlusion":
            saliency.occlusion(model, x, t, window=32, stride=16, progress=False)
        elif kind == "sanity check":
            saliency.sanity_check(model, x, t, "vanilla", max_steps=4, progress=False)
        else:
            raise ValueError(kind)
        return f"{x.shape[0]} photos"
    if name == "featurevis:handout loop":
        sys.path.insert(0, str(HERE))
        from bench_featurevis import handout_loop

        handout_loop(model, roles.mid_conv, list(roles.mid_channels), 30, 224, "cpu")
        return f"{roles.mid_conv} {list(roles.mid_channels)}"
    if name == "featurevis:labkit handout":
        featurevis.visualize(model, roles.mid_conv, list(roles.mid_channels), preset="handout", steps=30, size=224,
                             progress=False)
        return f"{roles.mid_conv} {list(roles.mid_channels)}"
    if name == "quantisation sweep":
        from course.experiments import sweep

        sweep(model, bits=(8, 4, 2), layer=False, progress=False)
        return "8/4/2 bits"
    if name == "weight explorer":
        from course.experiments import explore

        explore(model, k=6, steps=64, size=128, progress=False)
        return f"{roles.circuit_layer} #{roles.circuit_channel}"
    raise ValueError(f"Unknown call {name!r}. Valid: {', '.join(CALLS)}.")


#: (call, lab, what it is, the call it is compared with)
CALLS = {
    "saliency:handout vanilla": ("lab 1", "vanilla gradient, handout loop (per image, weights not frozen)", None),
    "saliency:vanilla": ("lab 1", "vanilla gradient", "saliency:handout vanilla"),
    "saliency:guided backprop": ("lab 1", "guided backprop", None),
    "saliency:Grad-CAM": ("lab 1", "Grad-CAM (last conv)", None),
    "saliency:SmoothGrad": ("lab 1", "SmoothGrad, 25 samples", None),
    "saliency:integrated gradients": ("lab 1", "integrated gradients, 50 steps", None),
    "saliency:occlusion": ("lab 1", "occlusion, window 32, stride 16", None),
    "saliency:sanity check": ("lab 1", "sanity check (vanilla, 4 steps)", None),
    "featurevis:handout loop": ("lab 2", "Duke handout loop, 30 steps, 224 px", None),
    "featurevis:labkit handout": ("lab 2", "`visualize(preset=\"handout\")`, 30 steps, 224 px", "featurevis:handout loop"),
    "quantisation sweep": ("lab 4", "sweep at 8/4/2 bits, shipped photos, no pictures", None),
    "weight explorer": ("lab 5", "explore: 6 input kernels + pictures, 64 steps, 128 px", None),
}


def child(args) -> None:
    import resource

    import torch

    from labkit.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, pretrained=args.model == "efficientnet_lite0", device="cpu", verbose=False)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    w0, c0 = time.perf_counter(), time.process_time()
    note = _call(args.call, model)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(args.result).write_text(json.dumps({"seconds": wall, "cpu_seconds": cpu, "rss_peak_mb": peak / 1024,
                                             "rss_growth_mb": (peak - rss_loaded) / 1024, "note": note}))


# --------------------------------------------------------------------------- the parent


def _machine(threads: int) -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
            f"{threads or torch.get_num_threads()}, torch {torch.__version__}")


def _table(results, models, threads, loads) -> str:
    lines = [
        "## The course's heavy calls: seconds and peak memory",
        "",
        f"CPU ({_machine(threads)}), {time.strftime('%Y-%m-%d')}; load average {min(loads):.1f}..{max(loads):.1f} "
        "while it ran (a shared machine: compare within a column, and prefer the CPU seconds).",
        "Each cell: wall s / CPU s / peak RSS MB of a fresh process (model, torch and the call); "
        "VGG16 has random weights (`pretrained=False`), which time and memory do not depend on.",
        "",
        "| lab | call | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for call, (lab, what, versus) in CALLS.items():
        cells = []
        for m in models:
            r = results.get((m, call))
            if r is None:
                cells.append("-")
            elif "error" in r:
                cells.append(f"failed: {r['error']}")
            else:
                cell = f"{r['seconds']:.1f} / {r['cpu_seconds']:.1f} / {r['rss_peak_mb']:.0f}"
                base = results.get((m, versus)) if versus else None
                if base and "error" not in base:
                    cell += f" (**{base['cpu_seconds'] / r['cpu_seconds']:.1f}x** the handout)"
                cells.append(cell)
        lines.append(f"| {lab} | {what} | " + " | ".join(cells) + " |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/bench_course.py --threads "
              f"{threads}`", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--calls", nargs="+", default=list(CALLS), choices=list(CALLS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads per call (0: torch's default)")
    parser.add_argument("--out", default=str(HERE / "results" / "course.md"))
    parser.add_argument("--readme", action="store_true", help="also rewrite the README's benchmark table")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per call before it counts as failed")
    parser.add_argument("--resume", action="store_true",
                        help="keep the measurements already in the results .json and run only the missing ones")
    parser.add_argument("--report", action="store_true", help="only rebuild the tables from the results .json")
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--call", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.call:
        child(args)
        return 0

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = out.with_suffix(".json")
    results, loads = {}, [os.getloadavg()[0]]
    if args.resume and saved.is_file():
        data = json.loads(saved.read_text())
        loads += data.get("loads", [])
        results = {tuple(k.split(" | ", 1)): r for k, r in data["results"].items()}

    def save():
        saved.write_text(json.dumps({"loads": loads, "results": {f"{m} | {c}": r for (m, c), r in results.items()}},
                                    indent=1))

    if args.report:
        data = json.loads(saved.read_text())
        loads = data.get("loads", loads)
        results = {tuple(k.split(" | ", 1)): r for k, r in data["results"].items()}
        args.models, args.calls = [], []  # nothing to run
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads or os.cpu_count()), LABKIT_FAST="0")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for i, call in enumerate(args.calls):
                if (model, call) in results and "error" not in results[(model, call)]:
                    continue
                result = os.path.join(tmp, f"{model}-{i}.json")
                cmd = [sys.executable, __file__, "--model", model, "--call", call, "--result", result,
                       "--threads", str(args.threads)]
                print(f"{model}: {call} ...", flush=True)
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout,
                                          cwd=ROOT)
                except subprocess.TimeoutExpired:
                    results[(model, call)] = {"error": f"over {args.timeout} s"}
                    continue
                finally:
                    loads.append(os.getloadavg()[0])
                if proc.returncode != 0:
                    reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    results[(model, call)] = {"error": reason[:120]}
                    print(f"  failed: {reason}", flush=True)
                    continue
                results[(model, call)] = json.loads(Path(result).read_text())
                save()
                r = results[(model, call)]
                print(f"  {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, {r['rss_peak_mb']:.0f} MB", flush=True)
    models = [m for m in MODELS if any(k[0] == m for k in results)]
    table = _table(results, models, args.threads, loads)
    print()
    print(table)
    out.write_text(table)
    save()
    if args.readme:
        sys.path.insert(0, str(HERE))
        from _readme import rewrite_block

        rewrite_block("bench_course", table.split("\n", 2)[2])  # the README has its own heading
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

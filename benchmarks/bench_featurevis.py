"""Benchmark: labkit.featurevis.visualize vs the Duke handout's loop vs torch-lucent's render_vis.

Run on demand (not part of the tests)::

    .venv/bin/python benchmarks/bench_featurevis.py                      # CPU, defaults below
    .venv/bin/python benchmarks/bench_featurevis.py --device cuda --steps 30 --filters 1 3 15 63 127 255 383 479
    # issue 16's GPU target: all 64 filters of a VGG16 layer (conv1_2) at once vs the handout loop over them
    .venv/bin/python benchmarks/bench_featurevis.py --device cuda --model vgg16 --random --layer features.2 \
        --filters $(seq 0 63) --methods 'handout loop' 'labkit handout' --out benchmarks/results/featurevis_gpu_vgg16.md

Same model (``--model``, default efficientnet_lite0 with its bundled weights; ``--random`` for
random weights seeded alike in every process, e.g. VGG16 where its weights cannot be downloaded:
time and memory do not depend on them), layer, filters, steps and objective for every method: the Duke feedback signal, mean |activation| of the filter's channel. Methods:

* ``handout loop``: the Duke lab's code, re-written here: one filter at a time, a forward hook
  on the layer, the FULL forward pass every step, Adam(lr 0.1, weight decay 1e-6) on the
  normalised image, 224 px, random uniform start (150..180 grey levels), parameters NOT frozen
  (so autograd also builds the graph for the weights).
* ``labkit handout``: ``visualize(preset="handout")``: the same algorithm, all filters in one batch,
  forward pass truncated at the layer, parameters frozen.
* ``lucent render_vis``: torch-lucent 0.1.8 with its defaults (decorrelated FFT image, standard
  transforms, Adam lr 0.05), all filters in one batch (``param.image(size, batch=F)``), objective
  mean |activation|, lucent's full-model hooks and full forward pass; the lite0 normalisation
  (mean = std = 0.5) is appended as the last transform (lucent's own assumes ImageNet's).
* ``labkit quality``: ``visualize(preset="quality", objective="mean_abs")``: lucid's decorrelated Fourier
  image and Adam lr 0.05, with labkit's standard transforms (one random scale/rotation/shift per step).
* ``labkit quality, no transforms``: the same without the random transforms: how much of the
  activation gap to the handout is the price of transformation robustness, and how much the
  Fourier parameterisation's.

Each method runs in its own subprocess, ``--repeats`` times in interleaved rounds (the fastest round is kept), so
its peak resident memory (``ru_maxrss``) is its own;
we report the growth over the process's peak after loading the model and torch (and
``torch.cuda.max_memory_allocated`` on a GPU). Time covers the optimisation only. The achieved
activation is measured afterwards in this process, for every method the same way: the final
images resized to 224 px (bilinear), normalised with the model's mean/std, mean |activation| of
the channel. torch-lucent is a benchmark-only dependency::

    .venv/bin/pip install --no-deps torch-lucent "kornia==0.4.1" decorator

(``--no-deps`` because its metadata pins test tools and scikit-learn it does not need to render.)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("handout loop", "labkit handout", "labkit quality", "labkit quality, no transforms", "lucent render_vis")


# --------------------------------------------------------------------------- the methods (child side)


def _load(device, name="efficientnet_lite0", random=False):
    import torch

    from labkit.models import load_model

    torch.manual_seed(0)  # random weights: the same in every process (the methods' and the measurement's)
    return load_model(name, pretrained=not random, device=device, verbose=False), torch


def handout_loop(model, layer, filters, steps, size, device):
    """The Duke handout's approach, one filter at a time, parameters not frozen, full forward."""
    import numpy as np
    import torch

    from labkit.images import denormalize, normalize

    for p in model.parameters():  # the handout's model is a plain pretrained model: nothing frozen
        p.requires_grad_(True)
    module = model.get_submodule(layer)
    images = []
    for f in filters:
        store = {}
        handle = module.register_forward_hook(lambda m, i, o, f=f: store.__setitem__("out", o[0, f]))
        rng = np.random.default_rng(f)
        start = torch.from_numpy(rng.uniform(150, 180, (1, 3, size, size)).astype("float32") / 255).to(device)
        x = normalize(start, model).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.1, weight_decay=1e-6)
        for _ in range(steps):
            opt.zero_grad()
            model(x)  # the whole network runs, although only one layer is needed
            loss = -store["out"].abs().mean()
            loss.backward()
            opt.step()
        handle.remove()
        images.append(denormalize(x.detach(), model).clamp(0, 1))
    return torch.cat(images)  # the weights keep the .grad the loop gave them (reported in the table)


def labkit_run(model, layer, filters, steps, size, device, preset, **extra):
    from labkit.featurevis import visualize

    if preset == "quality":
        extra["objective"] = "mean_abs"
    return visualize(model, layer, filters, preset=preset, steps=steps, size=size, progress=False, **extra).images


def lucent_run(model, layer, filters, steps, size, device):
    import torch
    from lucent.optvis import objectives, param, render, transform

    lucent_layer = layer.replace(".", "_")  # lucent names modules with underscores

    def objective(T):
        acts = T(lucent_layer)
        return -sum(acts[i, f].abs().mean() for i, f in enumerate(filters))

    param_f = lambda: param.image(size, batch=len(filters))  # noqa: E731  (fft + decorrelated colour)
    transforms = transform.standard_transforms + [lambda x: (x - 0.5) / 0.5]  # lite0: mean = std = 0.5
    # lucent picks its device itself (cuda:0 when available), like the model's default device
    images = render.render_vis(model, objectives.Objective(objective), param_f, transforms=transforms,
                               thresholds=(steps,), preprocess=False, progress=False, show_image=False)
    return torch.from_numpy(images[-1]).permute(0, 3, 1, 2)


def child(args) -> None:
    import resource

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = _load(args.device, args.model, args.random)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    if args.method == "handout loop":
        images = handout_loop(model, args.layer, args.filters, args.steps, args.size, args.device)
    elif args.method == "labkit handout":
        images = labkit_run(model, args.layer, args.filters, args.steps, args.size, args.device, "handout")
    elif args.method == "labkit quality":
        images = labkit_run(model, args.layer, args.filters, args.steps, args.size, args.device, "quality")
    elif args.method == "labkit quality, no transforms":
        images = labkit_run(model, args.layer, args.filters, args.steps, args.size, args.device, "quality",
                            transforms=[])
    else:
        images = lucent_run(model, args.layer, args.filters, args.steps, args.size, args.device)
    if cuda:
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    np.save(args.result + ".npy", images.detach().cpu().float().numpy())
    report = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_loaded) / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "params_with_grad": sum(p.grad is not None for p in model.parameters()),
    }
    Path(args.result + ".json").write_text(json.dumps(report))


# --------------------------------------------------------------------------- the parent


def measure(images_path: str, layer: str, filters, device: str, model_name: str, random: bool):
    """Mean |activation| of each filter on its final image at 224 px: the same for every method."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from labkit.images import normalize
    from labkit.layers import activations

    model, _ = _load(device, model_name, random)
    x = torch.from_numpy(np.load(images_path)).to(device).clamp(0, 1)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False) if x.shape[-1] != 224 else x
    with torch.no_grad():
        act = activations(model, normalize(x, model), layer)
    return [float(act[i, f].abs().mean()) for i, f in enumerate(filters)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--random", action="store_true", help="random weights (pretrained=False), seeded alike")
    parser.add_argument("--layer", default="blocks.3.1.bn1")
    parser.add_argument("--filters", type=int, nargs="+", default=[1, 3, 15, 63, 127, 255, 383, 479])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per method (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each method's fastest is kept")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", default=str(HERE / "results" / "featurevis.md"))
    parser.add_argument("--readme", action="store_true", help="also rewrite the README's feature visualisation table")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.method:
        child(args)
        return 0

    best = {}  # method -> report of its fastest round (CPU seconds; wall seconds on a GPU)
    key = "seconds" if args.device.startswith("cuda") else "cpu_seconds"
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.repeats):  # interleaved rounds: a slow spell of the machine hits every method
            for i, method in enumerate(args.methods):
                if "error" in best.get(method, {}):
                    continue
                result = os.path.join(tmp, f"m{i}r{rnd}")
                cmd = [sys.executable, __file__, "--method", method, "--result", result, "--layer", args.layer,
                       "--steps", str(args.steps), "--size", str(args.size), "--device", args.device,
                       "--threads", str(args.threads), "--model", args.model, "--filters", *map(str, args.filters)]
                cmd += ["--random"] if args.random else []
                print(f"round {rnd + 1}/{args.repeats}: {method} ...", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    print(f"  {method} failed: {reason}", flush=True)
                    best[method] = {"method": method, "error": reason}
                    continue
                report = json.loads(Path(result + ".json").read_text())
                print(f"  {report['seconds']:.1f} s wall, {report['cpu_seconds']:.1f} s CPU", flush=True)
                if method in best and best[method][key] <= report[key]:
                    continue
                report["activation"] = measure(result + ".npy", args.layer, args.filters, args.device, args.model,
                                               args.random)
                report["method"] = method
                best[method] = report
    rows = [best[m] for m in args.methods if m in best]

    import torch

    n = len(args.filters)
    weights = "random weights" if args.random else \
        "bundled weights" if args.model == "efficientnet_lite0" else "pretrained weights"
    lines = [
        f"## Feature visualisation: {args.layer}, filters {args.filters}, {args.steps} steps, {args.size} px",
        "",
        f"{args.model} ({weights}); device {args.device}"
        + (f" ({torch.cuda.get_device_name(0)})" if args.device.startswith("cuda") else
           f" ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
           f"{args.threads or torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at the end)")
        + f"; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}.",
        "Activation: mean |activation| of each filter on its final image at 224 px (mean over filters; min..max).",
        "Speed-up: ratio of CPU seconds (on a GPU: wall seconds), each method in its own subprocess, the fastest of "
        f"{args.repeats} interleaved rounds; on a shared machine the CPU time of a one-thread process is the steadier "
        "figure.",
        "",
        "| method | wall s / filter | CPU s / filter | speed-up vs handout loop | activation mean (min..max) "
        "| peak RSS MB | RSS growth over model load MB | CUDA peak MB | model params given .grad |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = next((r[key] for r in rows if r["method"] == "handout loop" and "error" not in r), None)
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error']} | | | | | | | |")
            continue
        acts = r["activation"]
        speed = f"{base / r[key]:.2f}x" if base else "-"
        cuda = f"{r['cuda_peak_mb']:.0f}" if r["cuda_peak_mb"] is not None else "-"
        lines.append(f"| {r['method']} | {r['seconds'] / n:.2f} | {r['cpu_seconds'] / n:.2f} | {speed} | {sum(acts) / n:.2f} "
                     f"({min(acts):.2f}..{max(acts):.2f}) | {r['rss_peak_mb']:.0f} | {r['rss_growth_mb']:.0f} | {cuda} | "
                     f"{r['params_with_grad']} |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/bench_featurevis.py "
              + shlex.join(argv if argv is not None else sys.argv[1:]) + "`", ""]
    table = "\n".join(lines)
    print()
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    if args.readme:
        sys.path.insert(0, str(HERE))
        from _readme import rewrite_block

        rewrite_block("bench_featurevis", table.split("\n", 2)[2])  # the README has its own heading
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where a feature-visualisation step spends its time, and which speed settings of ``render`` pay.

Run on demand (not part of the tests)::

    .venv/bin/python benchmarks/profile_featurevis.py --threads 1

For one layer and a few channels it times, per image and step, every combination the loop can use.
The settings are timed in interleaved rounds (each round runs every setting once, after a warm-up
round) and the fastest of ``--repeats`` rounds is kept, as wall time and as this process's CPU time:
on a shared machine the CPU time of a one-thread run is the steadier figure. The settings:

* the network as loaded vs the frozen copy with batch norms folded into the convolutions;
* channels-last memory layout; bf16 / fp16 autocast (bf16 on CPUs that have it);
* images per forward/backward pass (``batch_size``), in this process and, separately, each batch size
  in fresh processes of its own (``--fresh-steps``), since how often the memory allocator hands back
  fresh, zero-filled pages depends on what the process freed before;
* timm's TensorFlow-"same" depthwise convolutions run as they are (padding copy) vs without the copy
  (``fastpath.SameDepthwise``);
* the cost of the Fourier parameterisation and of the transforms on top: labkit's one random
  affine (``standard_transforms``) and lucent's pad/jitter/scale/rotate/jitter chain;

and, for autocast, how far the final activation of a whole ``visualize`` run moves from float32
(kept only when within 2%). Everything runs in this one process, on the same inputs, so compare
the ratios. Writes ``benchmarks/results/featurevis_profile.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _timed(fn):
    """(wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


@contextlib.contextmanager
def _timm_same_padding_kept():
    """The fast copy without :class:`~labkit.featurevis.fastpath.SameDepthwise` (benchmark only)."""
    from labkit.featurevis import fastpath

    original = fastpath._is_same_depthwise
    fastpath._is_same_depthwise = lambda m: False
    try:
        yield
    finally:
        fastpath._is_same_depthwise = original


def _fresh_child(args) -> None:
    """One ``visualize`` run in this fresh process; prints CPU/wall seconds and minor page faults."""
    import torch

    from labkit import featurevis as fv
    from labkit.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, pretrained=not args.random, device=args.device, verbose=False)
    kw = dict(preset="handout", size=args.size, progress=False, batch_size=args.fresh_child)
    fv.visualize(model, args.layer, args.channels[:1], steps=2, **kw)  # warm-up
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = _timed(lambda: fv.visualize(model, args.layer, args.channels, steps=args.fresh_steps, **kw))
    print(json.dumps(dict(wall=wall, cpu=cpu, faults=resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)))


def _fresh_batches(args, argv) -> list:
    """(batch size, wall ms, CPU ms, minor page faults per image-step): fastest of interleaved fresh processes."""
    n = len(args.channels)
    best = {}
    base = [sys.executable, str(Path(__file__).resolve())] + list(argv)
    for rnd in range(args.repeats):
        for bs in (1, 2, 4):
            proc = subprocess.run(base + ["--fresh-child", str(bs)], capture_output=True, text=True, check=True)
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            old = best.get(bs)
            if old is None or got["cpu"] < old["cpu"]:
                best[bs] = got
        print(f"fresh-process round {rnd + 1} done", flush=True)
    scale = 1 / (n * args.fresh_steps)
    return [(bs, r["wall"] * scale * 1000, r["cpu"] * scale * 1000, r["faults"] * scale) for bs, r in best.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--random", action="store_true", help="random weights (pretrained=False), e.g. for vgg16")
    parser.add_argument("--layer", default="blocks.3.1.bn1")
    parser.add_argument("--channels", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--accuracy-steps", type=int, default=30, help="steps of the autocast accuracy check")
    parser.add_argument("--fresh-steps", type=int, default=10,
                        help="steps of each fresh-process batch-size run (0: skip that part)")
    parser.add_argument("--fresh-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "featurevis_profile.md"))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.fresh_child:
        _fresh_child(args)
        return 0

    import torch

    from labkit import featurevis as fv
    from labkit.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, pretrained=not args.random, device=args.device, verbose=False)
    n = len(args.channels)
    cuda = args.device.startswith("cuda")

    configs = []

    def add(label, **kw):
        configs.append((label, kw))

    batch_sizes = [1, 2, 4, None]
    for bs in batch_sizes:
        add(f"as loaded, batch {bs or n}", fast=False, batch_size=bs)
    for bs in batch_sizes:
        add(f"folded, batch {bs or n}", fast=True, channels_last=False, batch_size=bs)
    for bs in (1, 2, None):
        add(f"folded + channels-last, batch {bs or n}", fast=True, channels_last=True, batch_size=bs)
    add("folded + channels-last, batch 1, timm's same-padded depthwise convolutions kept (padding copy)", fast=True,
        channels_last=True, batch_size=1, keep_timm_padding=True)
    low = "fp16" if cuda else "bf16"
    for bs in (1, None):
        add(f"folded + {low} autocast, batch {bs or n}", fast=True, channels_last=False, autocast=low, batch_size=bs)
        add(f"folded + channels-last + {low}, batch {bs or n}", fast=True, channels_last=True, autocast=low,
            batch_size=bs)
    add("folded + channels-last, batch 1 + fft parameterisation", fast=True, channels_last=True, batch_size=1,
        param="fft")
    add("folded + channels-last, batch 1 + standard transforms (one random affine)", fast=True, channels_last=True,
        batch_size=1, transforms="standard")
    add("folded + channels-last, batch 1 + lucent's transform chain (pad, jitter, scale, rotate, jitter)", fast=True,
        channels_last=True, batch_size=1, transforms=fv.lucent_transforms())
    add("folded + channels-last, batch 1 + fft + standard transforms (quality recipe)", fast=True,
        channels_last=True, batch_size=1, param="fft", transforms="standard")
    add("folded + channels-last, batch 1 + fft + lucent's transform chain", fast=True,
        channels_last=True, batch_size=1, param="fft", transforms=fv.lucent_transforms())

    def run(kw):
        kw = dict(kw)
        keep = _timm_same_padding_kept() if kw.pop("keep_timm_padding", False) else contextlib.nullcontext()
        with keep:
            fv.visualize(model, args.layer, args.channels, preset="handout", steps=args.steps, size=args.size,
                         progress=False, **kw)
        if cuda:
            torch.cuda.synchronize()

    best = {label: [float("inf"), float("inf")] for label, _ in configs}
    errors = {}
    for rnd in range(args.repeats + 1):  # round 0 warms up
        for label, kw in configs:
            if label in errors:
                continue
            try:
                wall, cpu = _timed(lambda: run(kw))
            except Exception as err:  # e.g. autocast not supported on this device
                errors[label] = f"{type(err).__name__}: {err}"
                continue
            if rnd:
                best[label] = [min(best[label][0], wall), min(best[label][1], cpu)]
        print(f"round {rnd} done, load average {os.getloadavg()[0]:.1f}", flush=True)
    scale = 1000 / (n * args.steps)
    rows = [(label, None if label in errors else best[label][0] * scale,
             None if label in errors else best[label][1] * scale, errors.get(label, "")) for label, _ in configs]

    # accuracy of autocast: a whole run at the handout settings, final activation vs float32
    acc = []
    base = fv.visualize(model, args.layer, args.channels, preset="handout", steps=args.accuracy_steps,
                        size=args.size, progress=False)
    for label, kw in ((f"{low} autocast", dict(autocast=low)),
                      ("channels-last vs not", dict(channels_last=False)),
                      ("as loaded (no copy)", dict(fast=False))):
        try:
            r = fv.visualize(model, args.layer, args.channels, preset="handout", steps=args.accuracy_steps,
                             size=args.size, progress=False, **kw)
        except Exception as err:
            acc.append((label, None, None, f"{type(err).__name__}: {err}"))
            continue
        rel = ((r.activations - base.activations).abs() / base.activations.abs().clamp_min(1e-6))
        acc.append((label, float(rel.max()), float((r.activations.mean() / base.activations.mean()) - 1), ""))
        print(f"accuracy {label}: max rel {acc[-1][1]:.4f}", flush=True)

    fresh = _fresh_batches(args, argv) if args.fresh_steps > 0 else []
    base_cpu = rows[0][2]
    where = (torch.cuda.get_device_name(0) if cuda else
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
             f"{args.threads or torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    lines = [
        f"## Feature visualisation step profile: {args.model}{' (random weights)' if args.random else ''} "
        f"`{args.layer}`, {n} channels, {args.size} px",
        "",
        f"device {args.device} ({where}); load average {os.getloadavg()[0]:.1f} at the end; torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        f"Milliseconds per image and step: the fastest of {args.repeats} interleaved rounds, each a run of "
        f"{args.steps} steps of `visualize(preset=\"handout\")` (pixels, no transforms, mean |activation|) "
        "unless a row says otherwise; wall time and this process's CPU time.",
        "",
        "| setting | wall ms / image-step | CPU ms / image-step | speed-up (CPU time) vs as loaded, batch 1 |",
        "|---|---|---|---|",
    ]
    for label, wall, cpu, err in rows:
        if wall is None:
            lines.append(f"| {label} | failed: {err} | | |")
            continue
        lines.append(f"| {label} | {wall:.1f} | {cpu:.1f} | {base_cpu / cpu:.2f}x |")
    lines += ["", f"Final activation after {args.accuracy_steps} steps vs the default run (folded, channels-last on a "
              "CPU, float32; same seed):", "",
              "| change | max relative change per channel | change of the mean |", "|---|---|---|"]
    for label, worst, mean, err in acc:
        lines.append(f"| {label} | {'failed: ' + err if worst is None else f'{100 * worst:.2f}%'} | "
                     f"{'' if mean is None else f'{100 * mean:+.2f}%'} |")
    if fresh:
        lines += ["", f"Images per pass, each run in a fresh process of its own (model loaded, one 2-step warm-up run, then "
                  f"{args.fresh_steps} steps of the default fast path; the fastest of {args.repeats} interleaved "
                  "rounds). The in-process rows above run after larger batches have already been freed, which "
                  "changes how often the allocator hands back fresh pages; a student's kernel is closer to this:", "",
                  "| images per pass | wall ms / image-step | CPU ms / image-step | minor page faults / image-step |",
                  "|---|---|---|---|"]
        lines += [f"| {bs} | {wall:.1f} | {cpu:.1f} | {faults:.0f} |" for bs, wall, cpu, faults in fresh]
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/profile_featurevis.py "
              + shlex.join(argv if argv is not None else sys.argv[1:]) + "`", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

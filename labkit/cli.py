"""The ``labkit`` command line.

    labkit doctor                     what this machine can run
    labkit layers MODEL [--conv-only] the layer table with handout indices
    labkit weights fetch NAME         pre-seed the weights cache (needs internet)
    labkit weights list               which models are available offline now
    labkit featurevis ...             activation maximisation of channels to an image grid
    labkit report NOTEBOOK --to pdf   a student report

Each command's parser lives in its own ``_add_<command>`` function.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from typing import List, Optional


def _add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="print versions, device, weights cache and course tools")
    p.set_defaults(func=_cmd_doctor)


def _cmd_doctor(args) -> int:
    import torch

    from labkit import models

    print(f"labkit      {__import__('labkit').__version__}")
    print(f"python      {platform.python_version()} ({sys.executable})")
    print(f"torch       {torch.__version__}")
    cuda = torch.version.cuda or "none (CPU build)"
    print(f"CUDA build  {cuda}; available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    print(f"device      {models.resolve_device()} (labkit's default)")
    print(f"TORCH_HOME  {os.environ.get('TORCH_HOME', '<unset>')}; weights cache: {torch.hub.get_dir()}/checkpoints")
    print(f"default     {models.default_model_name()} (LABKIT_MODEL={os.environ.get('LABKIT_MODEL', '<unset>')})")
    print()
    print(f"{'model':<20}{'available now':<16}weights")
    for row in models.describe_models():
        print(f"{row['name']:<20}{'yes' if row['available'] else 'no':<16}{row['weights']}")
    print()
    for tool in ("nbgrader", "jupyterlab", "nbconvert", "ipywidgets", "captum"):
        spec = importlib.util.find_spec(tool)
        version = "missing"
        if spec is not None:
            try:
                from importlib.metadata import version as dist_version

                version = dist_version(tool)
            except Exception:
                version = "installed"
        print(f"{tool:<12}{version}")
    default = models.default_model_name()
    if not models.weights_available(default):
        print(f"\nnote: {default!r} weights are not cached; labkit will use {models.OFFLINE_MODEL!r} "
              f"until you run `labkit weights fetch {default}` with internet.")
    return 0


def _add_layers(sub) -> None:
    p = sub.add_parser("layers", help="print a model's layers with handout indices, shapes and receptive fields")
    p.add_argument("model", nargs="?", default=None, help="registry name (default: the course default)")
    p.add_argument("--conv-only", action="store_true", help="only conv layers")
    p.add_argument("--size", type=int, default=None, help="input size in px (default: the model's own)")
    p.set_defaults(func=_cmd_layers)


def _cmd_layers(args) -> int:
    from labkit import layers, models

    # Architecture only: the table needs no pretrained weights.
    model = models.load_model(args.model or models.default_model_name(), pretrained=False, device="cpu")
    table = layers.layers(model, args.size)
    print(f"{model.labkit.name}: input 3x{args.size or model.labkit.input_size}x{args.size or model.labkit.input_size}")
    print(table.conv() if args.conv_only else table)
    return 0


def _add_weights(sub) -> None:
    p = sub.add_parser("weights", help="manage pretrained weights")
    wsub = p.add_subparsers(dest="weights_cmd", required=True)
    f = wsub.add_parser("fetch", help="download a model's weights into the cache (TORCH_HOME)")
    f.add_argument("name", nargs="+", help="model name(s), or 'all'")
    f.set_defaults(func=_cmd_weights_fetch)
    ls = wsub.add_parser("list", help="which models can load offline now")
    ls.set_defaults(func=_cmd_weights_list)


def _cmd_weights_fetch(args) -> int:
    from labkit import models

    if args.name == ["all"]:  # every model with downloadable weights (not the bundled one)
        names = [n for n in models.model_names() if models.cached_weights_path(n) is not None]
    else:
        names = args.name
    status = 0
    for name in names:
        try:
            path = models.fetch_weights(name)
            print(f"{name}: cached at {path}")
        except ValueError as err:
            print(f"{name}: {err}")
        except Exception as err:  # network errors
            print(f"{name}: download failed ({err}). Check the internet connection, or copy the file into "
                  f"{models.cached_weights_path(name)}.", file=sys.stderr)
            status = 1
    return status


def _cmd_weights_list(args) -> int:
    from labkit import models

    for row in models.describe_models():
        print(f"{row['name']:<20}{'available' if row['available'] else 'not cached':<14}{row['weights']}")
    return 0


def _add_featurevis(sub) -> None:
    p = sub.add_parser(
        "featurevis", help="visualise channels by activation maximisation and save an image grid",
        description="Optimise one image per channel so that it excites that channel, and save them as one PNG "
                    "grid. Mirrors the Schneider project's image_gen.py: --octaves 3 --size 128 --outscale 4 "
                    "renders at 128, 256 and 512 px; --sharpness adds its Scharr-edge penalty; --start begins "
                    "from a photo (deep-dream style).",
    )
    p.add_argument("--model", default=None, help="registry name (default: the course default)")
    p.add_argument("--layer", default=None,
                   help="layer name or handout index (default: a mid-level conv layer, see default_target)")
    p.add_argument("--channels", "--filters", dest="channels", type=int, nargs="+", default=None,
                   help="channel indices of the layer (default: six spread over its channels)")
    p.add_argument("--preset", choices=["quality", "handout"], default="quality",
                   help="quality: clean pictures (default); handout: the Duke lab's plain pixel ascent")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps per octave (default: the preset's)")
    p.add_argument("--size", type=int, default=None, help="image side in px of the first octave (default: the preset's)")
    p.add_argument("--octaves", type=int, default=1, help="number of octaves (scales) to optimise at (default 1)")
    p.add_argument("--outscale", type=float, default=1.0,
                   help="final size / --size: octaves grow geometrically from --size to --size*outscale; with "
                        "one octave the saved image is just resized by this factor (default 1)")
    p.add_argument("--sharpness", type=float, default=0.0,
                   help="strength of the Scharr-edge penalty (Schneider's sharpness; 0 = off, 5 = strong smoothing "
                        "of fine, noisy edges so that larger patterns stand out)")
    p.add_argument("--color", type=float, default=0.0,
                   help="strength of the penalty on colours far from the dataset mean (Schneider's colour penalty; 0 = off)")
    p.add_argument("--start", default=None, help="start from this photo (path or sample name) instead of noise")
    p.add_argument("--relu", choices=["before", "after"], default=None,
                   help="visualise the channel before or after the non-linearity that follows the layer")
    p.add_argument("--objective", choices=["mean", "mean_abs", "center"], default=None,
                   help="what to maximise (default: the preset's: quality mean, handout mean_abs)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--ncols", type=int, default=None, help="columns of the saved grid (default: about square)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("-o", "--output", default="featurevis.png", help="PNG file to write (default featurevis.png)")
    p.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_featurevis)


def _cmd_featurevis(args) -> int:
    from pathlib import Path

    from labkit import featurevis as fv
    from labkit import models

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--output must be a .png file, got {str(out)!r}.")
    if out.exists() and not args.force:  # refuse before minutes of optimisation, not after
        print(f"labkit featurevis: error: {str(out)!r} already exists; pass --force to overwrite it.", file=sys.stderr)
        return 2
    if args.octaves < 1 or args.outscale <= 0:
        raise ValueError(f"--octaves must be >= 1 and --outscale > 0, got {args.octaves} and {args.outscale}.")
    model = models.load_model(args.model, device=args.device, verbose=True)
    default_layer, default_channels = default_target(model)
    layer = args.layer if args.layer is not None else default_layer
    channels = args.channels if args.channels is not None else default_channels
    regularizers = []
    if args.sharpness > 0:
        regularizers.append(fv.scharr_edges(args.sharpness * fv.regularizers.SHARPNESS_UNIT))
    if args.color > 0:
        regularizers.append(fv.color_penalty(args.color * fv.regularizers.COLOR_UNIT))
    # outscale spreads over the octaves; with one octave it only resizes the saved picture
    octave_scale = args.outscale ** (1.0 / (args.octaves - 1)) if args.octaves > 1 else 1.0
    save_scale = 1.0 if args.octaves > 1 else args.outscale
    result = fv.visualize(
        model, layer, channels, steps=args.steps, size=args.size, seed=args.seed, relu=args.relu,
        objective=args.objective, lr=args.lr, regularizers=regularizers or None, octaves=args.octaves,
        octave_scale=octave_scale, start=args.start, preset=args.preset, progress=not args.quiet,
    )
    try:
        path = result.save(out, ncols=args.ncols, scale=save_scale, force=args.force)
    except FileExistsError as err:
        print(f"labkit featurevis: error: {err}", file=sys.stderr)
        return 2
    h, w = result.images.shape[-2:]
    print(f"{model.labkit.name} {result.layer} channels {result.channels}: {w}x{h} px each -> {path}")
    for c, a in zip(result.channels, result.activations.tolist()):
        print(f"  channel {c}: {result.objective} = {a:.4g}")
    return 0


def default_target(model, count: int = 6):
    """``(layer, channels)`` that ``labkit featurevis`` shows when none are given, from the layer table.

    The layer is the middle one of the model's ordinary (not grouped/depthwise) conv layers that a
    non-linearity follows (VGG16: ``features.14``); the channels are ``count`` indices spread evenly
    over its channels, first and last included.
    """
    from labkit import layers

    table = layers.layers(model).conv()
    convs = [row for row in table
             if row.activation and row.channels and getattr(model.get_submodule(row.name), "groups", 1) == 1]
    convs = convs or [row for row in table if row.channels]
    if not convs:
        raise ValueError("This model has no conv layers to visualise; pass --layer and --channels.")
    row = convs[len(convs) // 2]
    n = min(count, row.channels)
    channels = sorted({round(i * (row.channels - 1) / max(n - 1, 1)) for i in range(n)})
    return row.name, channels


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="export a notebook as a student report (PDF or HTML)",
        description="Export a saved notebook as a report: a self-contained HTML file, or a PDF printed by "
                    "headless Chromium (offline; no TeX). Question headings start new pages; the title block "
                    "shows the lab and STUDENT_NAME. Exit status: 0 written, 1 PDF failed (HTML written "
                    "instead), 2 bad input.")
    p.add_argument("notebook", help="the .ipynb file (never modified)")
    p.add_argument("--to", choices=("pdf", "html"), default="pdf", help="report format (default: pdf)")
    p.add_argument("-o", "--output", default=None,
                   help="output file (default: the notebook's path with .pdf/.html); its folder must exist")
    p.add_argument("--no-code", action="store_true", help="hide code cells' input, keep their outputs")
    p.add_argument("--questions-only", action="store_true",
                   help="only question sections and the student's solution cells")
    p.add_argument("--browser", default=None, metavar="PATH",
                   help="Chromium/Chrome executable for PDFs (default: $LABKIT_CHROMIUM, chromium, google-chrome, ...)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="seconds the browser may take (default 120)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from labkit import report

    try:
        path = report.convert(args.notebook, args.to, args.output, code=not args.no_code,
                              questions_only=args.questions_only, browser=args.browser, timeout=args.timeout)
    except report.RenderError as err:
        print(f"labkit report: {err}", file=sys.stderr)
        return 1
    info = report.report_info(report.read_notebook(args.notebook))
    if not info.student:
        print("labkit report: warning: no student name (set STUDENT_NAME = \"Your Name\" in the notebook's "
              "settings cell and save it)", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Lab-course kit for teaching how CNNs see.")
    parser.add_argument("--version", action="version", version=f"labkit {__import__('labkit').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_doctor, _add_layers, _add_weights, _add_featurevis, _add_report):
        add(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, IndexError, FileNotFoundError, TypeError) as err:
        # Bad input: one clear line, not a traceback.
        print(f"labkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

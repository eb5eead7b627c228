"""The ``labkit`` command line.

    labkit doctor                     what this machine can run
    labkit layers MODEL [--conv-only] the layer table with handout indices
    labkit weights fetch NAME         pre-seed the weights cache (needs internet)
    labkit weights list               which models are available offline now
    labkit featurevis ...             activation maximisation to an image grid
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

    names = [n for n in models.model_names() if models._entry(n).weights_enum] if args.name == ["all"] else args.name
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
    p = sub.add_parser("featurevis", help="visualise filters by activation maximisation and save an image grid")
    p.set_defaults(func=lambda args: _not_ready("featurevis"))


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


def _not_ready(name: str) -> int:
    print(f"labkit {name}: not available in this version.", file=sys.stderr)
    return 2


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

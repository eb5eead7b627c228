"""Peak resident memory of each lab notebook run at full settings (issue 16's memory budgets).

Run on demand (not part of the tests), one lab at a time::

    .venv/bin/python benchmarks/lab_memory.py                          # every lab on Lite0
    .venv/bin/python benchmarks/lab_memory.py --labs lab1_saliency --model efficientnet_lite0

Each lab's nbgrader source notebook (``notebooks/<lab>/<lab>.ipynb``, the version with the
solutions) is executed top to bottom with nbclient under ``/usr/bin/time -v``, with
``LABKIT_FAST=0`` (full settings), ``LABKIT_MODEL`` set to the model and ``LABKIT_OFFLINE=1``. The
reported peak is the largest ``Maximum resident set size`` of the process tree (the kernel's, in
practice). Budgets: 2 GB on Lite0, 6 GB on VGG16. Writes ``benchmarks/results/lab_memory.md``.

Models whose weights cannot be had here (VGG16, VGG19) run with random weights, which time and
memory do not depend on: ``--model vgg16`` writes randomly initialised torchvision weights into a
temporary ``TORCH_HOME`` under the file name the real download would have, for this benchmark's
kernels only. The labs' visible checks of model behaviour then fail, so such runs continue past
errors (``allow_errors``) and the table counts the cells that raised.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
allow = sys.argv[4] == "1"
NotebookClient(nb, timeout=int(sys.argv[2]), kernel_name="python3", allow_errors=allow,
               resources={"metadata": {"path": sys.argv[3]}}).execute()
errors = sum(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
print(f"cells that raised: {errors}", file=sys.stderr)
"""


def random_weights_home(models, folder: Path) -> Path:
    """A TORCH_HOME holding randomly initialised torchvision weights for ``models`` under the file
    names the real downloads have (so ``load_model(name)`` finds them), for benchmarks only."""
    import torch
    import torchvision

    from labkit.models import cached_weights_path

    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(folder)
    try:
        for name in models:
            path = cached_weights_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), path)
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    return folder


def run_lab(lab: str, model: str, timeout: int, threads: int, torch_home: Optional[Path] = None) -> dict:
    nb = ROOT / "notebooks" / lab / f"{lab}.ipynb"
    env = dict(os.environ, LABKIT_FAST="0", LABKIT_MODEL=model, LABKIT_OFFLINE="1", MPLBACKEND="Agg")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if torch_home is not None:
        env["TORCH_HOME"] = str(torch_home)
    # `timeout` inside /usr/bin/time: a lab stopped at the time limit still reports the peak it reached
    cmd = ["/usr/bin/time", "-v", "timeout", "-s", "INT", "-k", "30", str(timeout), sys.executable, "-c", RUNNER,
           str(nb), str(timeout), str(nb.parent), "1" if torch_home is not None else "0"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    row = {"lab": lab, "seconds": wall, "rss_mb": int(rss.group(1)) / 1024 if rss else None}
    raised = re.search(r"cells that raised: (\d+)", proc.stderr)
    if raised and int(raised.group(1)):
        row["error"] = f"{raised.group(1)} cells raised (random weights: the visible checks of behaviour fail)"
    if proc.returncode in (124, 130, 137) or "Command exited with non-zero status 124" in proc.stderr:
        row["error"] = f"stopped at the {timeout} s limit: peak so far (partial run)"
        return row
    if proc.returncode != 0:
        own = proc.stderr.split("\tCommand being timed:")[0]  # what came before /usr/bin/time's report
        lines = [ln.strip() for ln in own.splitlines() if "Error" in ln or "error" in ln] or own.splitlines()[-1:]
        row["error"] = (lines[-1] if lines else "failed")[:200]
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"lab_memory_{lab}.log"
        log.write_text(own)
        row["error"] += f" (stderr: {log})"
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    labs = sorted(p.name for p in (ROOT / "notebooks").iterdir() if (p / f"{p.name}.ipynb").is_file())
    parser.add_argument("--labs", nargs="+", default=labs, choices=labs)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per lab")
    parser.add_argument("--threads", type=int, default=0, help="OMP threads of the kernel (0: default)")
    parser.add_argument("--out", default=str(HERE / "results" / "lab_memory.md"))
    args = parser.parse_args(argv)
    budget = 2048 if args.model == "efficientnet_lite0" else 6144
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = None
        if args.model != "efficientnet_lite0":  # lab 5 loads VGG19 next to the course model
            home = random_weights_home(sorted({args.model, "vgg19"}), Path(tmp))
        for lab in args.labs:
            print(f"{lab} ...", flush=True)
            rows.append(run_lab(lab, args.model, args.timeout, args.threads, home))
            print(f"  {rows[-1]}", flush=True)
    lines = [f"## Peak resident memory of each lab at full settings: {args.model}", "",
             f"{time.strftime('%Y-%m-%d')}; `LABKIT_FAST=0`; "
             + ("random weights (time and memory do not depend on them); " if args.model != "efficientnet_lite0" else "")
             + "nbclient under `/usr/bin/time -v`, one lab at a time; "
             f"budget {budget} MB; load average {os.getloadavg()[0]:.1f} at the end.", "",
             "| lab | peak RSS MB | within budget | wall s | note |", "|---|---|---|---|---|"]
    for r in rows:
        rss = r.get("rss_mb")
        lines.append(f"| {r['lab']} | {'-' if rss is None else f'{rss:.0f}'} | "
                     f"{'-' if rss is None else ('yes' if rss <= budget else '**no**')} | "
                     f"{r.get('seconds', 0):.0f} | {r.get('error', '')} |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/lab_memory.py "
              + shlex.join(argv if argv is not None else sys.argv[1:]) + "`", ""]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

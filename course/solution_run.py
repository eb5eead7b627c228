"""Executed solutions that say how they were made.

``nbgrader generate_solution`` runs :class:`RecordedExecute` (``course.assignments`` names it in
``GenerateSolution.preprocessors``) instead of nbgrader's own ``Execute``: the same execution, then
one more request to the still-running kernel for the model, the device and the quick-mode flag that
the lab actually used. The executed notebook's metadata then holds, under ``labkit`` (next to
``lab``, ``title`` and ``points``)::

    "model": "efficientnet_lite0", "weights": "bundled (...)", "fast": false,
    "seconds": 53.1, "labkit_version": "0.1.0", "device": "cpu"

The extra request runs in a temporary last cell that is removed again, so the solution's cells are
exactly nbgrader's.
"""
from __future__ import annotations

import json
import time
from typing import Optional

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell
from nbgrader.preprocessors import Execute

MARKER = "LABKIT_RUN_RECORD "
RECORD_KEYS = ("model", "weights", "fast", "labkit_version", "device")  # + "seconds"

# Runs in the lab's kernel after its last cell: reads the names every lab's settings cell defines
# (FAST, DEVICE, MODEL_NAME) and the loaded ``model`` with its ``model.labkit`` info.
PROBE = '''
def _labkit_run_record():
    import json

    import labkit
    from labkit.notebook import fast_mode

    g = globals()
    model = g.get("model")
    info = getattr(model, "labkit", None)
    device = g.get("DEVICE")
    if device is None and model is not None:
        device = next(iter(model.parameters()), None)
        device = None if device is None else device.device
    record = {
        "model": getattr(info, "name", None) or g.get("MODEL_NAME"),
        "weights": getattr(info, "source", None),
        "fast": bool(g.get("FAST", fast_mode())),
        "labkit_version": labkit.__version__,
        "device": None if device is None else str(device),
    }
    print(MARKER + json.dumps(record))


_labkit_run_record()
del _labkit_run_record
'''.replace("MARKER + ", repr(MARKER) + " + ").strip()


def parse_record(cell: NotebookNode) -> Optional[dict]:
    """The record the probe cell printed, or ``None`` when it raised or printed none."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                if line.startswith(MARKER):
                    return json.loads(line[len(MARKER):])
    return None


class RecordedExecute(Execute):
    """nbgrader's ``Execute``, then ``nb.metadata["labkit"]``: model, fast, seconds, labkit version, device."""

    def preprocess(self, nb, resources=None, km=None):
        probe = new_code_cell(PROBE)
        nb.cells.append(probe)
        t0 = time.perf_counter()
        try:
            nb, resources = super().preprocess(nb, resources, km)
        finally:
            seconds = time.perf_counter() - t0
            probe = nb.cells.pop()
        record = parse_record(probe) or {key: None for key in RECORD_KEYS}
        record["seconds"] = round(seconds, 1)
        nb.metadata.setdefault("labkit", {}).update(record)
        return nb, resources

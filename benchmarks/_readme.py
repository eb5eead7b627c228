"""Rewrite one marked block of the README (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``)."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def rewrite_block(name: str, body: str, readme: Path = README) -> None:
    """Replace what lies between the ``name`` markers with ``body`` (the markers must exist)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} markers.")
    new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{body.strip()}\n{end}", text,
                 flags=re.S)
    readme.write_text(new)

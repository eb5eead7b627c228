"""One printable-table base for every list of records labkit returns (text in a terminal, HTML in Jupyter)."""
from __future__ import annotations

import abc
import html
from typing import List, Optional


class RecordTable(list, metaclass=abc.ABCMeta):
    """A list of records that prints as an aligned table.

    Subclasses provide ``_head()`` (column titles), ``_cells(row)`` (strings for one row), and
    optionally ``_title()`` (a caption above) and ``_footer()`` (a note below).
    """

    @abc.abstractmethod
    def _head(self) -> List[str]:
        """Column titles."""

    @abc.abstractmethod
    def _cells(self, row) -> List[str]:
        """One row's cells as strings, in column order."""

    def _title(self) -> Optional[str]:
        return None

    def _footer(self) -> Optional[str]:
        return None

    def __str__(self) -> str:
        head, body = self._head(), [self._cells(r) for r in self]
        widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
        lines = [self._title()] if self._title() else []
        lines += ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(), "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
        if self._footer():
            lines.append(self._footer())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        caption = " ".join(t for t in (self._title(), self._footer()) if t)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>" for r in self)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._head())
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


class FormattedTable(RecordTable):
    """Records are dicts; ``columns`` is a tuple of (key, title, format) triples."""

    columns: tuple = ()

    def column(self, key: str) -> list:
        """One field across all rows, e.g. ``table.column("top1_agreement")``."""
        return [row.get(key) for row in self]

    def _head(self) -> List[str]:
        return [title for _, title, _ in self.columns]

    def _cells(self, row: dict) -> List[str]:
        return ["-" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in self.columns]

"""What every lab explorer shares: controls above a picture, computed lazily and cached, and a static
picture wherever no widget frontend runs.

An explorer is a few ipywidgets controls (dropdowns, sliders) and one picture. A subclass says

* ``key(setting)``: the part of the setting that needs computing (e.g. image, class and method,
  not the overlay's opacity); results are cached by it (least recently used, ``cache_size``);
* ``compute(setting)``: the expensive part (a saliency map, a feature visualisation), run once per key;
* ``draw(fig, result, setting)``: the matplotlib picture of a result (drawing only).

Nothing is computed until the explorer is shown or its picture asked for. A control change redraws
the picture; computations that take a while show labkit's progress bar above it (``progress=live``).

Where it is shown:

* with a live widget frontend (JupyterLab, Jupyter Notebook, VS Code, Colab), the controls and the
  picture; the display also carries the picture as ``image/png``, which HTML/PDF exports use when
  they have no widget state;
* with none (``nbconvert --execute``, nbgrader's autograding, plain Python), only the picture of
  the current setting as ``image/png``, so executed notebooks and their reports show a figure
  instead of an empty widget placeholder (:func:`widget_frontend` decides).
"""
from __future__ import annotations

import base64
import collections
import io
import time
from typing import Any, Dict, Hashable, Mapping, Optional

__all__ = ["Explorer", "widget_frontend", "figure_png"]


def widget_frontend() -> bool:
    """True when this code runs in a kernel whose frontend renders widgets.

    Two signs, either is enough: the frontend's widget manager opened ipywidgets' control channel
    (JupyterLab and Notebook 7 do when they connect), or the running cell may read from stdin (every
    interactive frontend allows ``input()``; nbconvert, nbclient, nbgrader and papermill do not).
    Outside IPython (plain Python, pytest) it is False.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    import ipywidgets

    if getattr(ipywidgets.Widget, "_control_comm", None) is not None:
        return True
    return bool(getattr(kernel, "_allow_stdin", False))


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib Figure as PNG bytes (the figure is not shown and can be dropped afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


class Explorer:
    """Controls + one picture, computed lazily and cached. See the module docstring.

    Args:
        controls: name -> ipywidgets control with a ``value``; the setting is ``{name: value}``.
        live: show widgets (True) or only the picture (False); None asks :func:`widget_frontend`.
        figsize: the picture's size in inches. dpi: its resolution.
        cache_size: how many computed results to keep (least recently used are dropped).

    Attributes:
        computed: how many times :meth:`compute` ran (a cached setting does not count).
        drawn: how many pictures were drawn.
        error: the message of the last failed update, or None.
    """

    title = ""

    def __init__(self, controls: Mapping[str, Any], *, live: Optional[bool] = None, figsize=(9.0, 4.0),
                 dpi: int = 90, cache_size: int = 32):
        import ipywidgets as widgets

        if not controls:
            raise ValueError("An explorer needs at least one control.")
        self.controls: Dict[str, Any] = dict(controls)
        self.live = widget_frontend() if live is None else bool(live)
        self.figsize, self.dpi, self.cache_size = tuple(figsize), int(dpi), int(cache_size)
        self._init_state()
        self.drawn = 0
        self.error: Optional[str] = None
        self._png: Optional[bytes] = None
        self._png_for: Optional[Hashable] = None
        self._adjusting = False
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                       align_self="flex-start"))
        self.status = widgets.HTML(value="")
        self.log = widgets.Output()  # progress bars while computing
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        parts = [widgets.HTML(f"<b>{self.title}</b>")] if self.title else []
        self.widget = widgets.VBox(parts + [row, self.status, self.log, self.image])

    def _init_state(self) -> None:
        """The result cache; a subclass may call this before ``__init__`` to compute a first result
        (e.g. to choose an initial control value from it)."""
        if not hasattr(self, "_results"):
            self.computed = 0
            self._results: "collections.OrderedDict[Hashable, Any]" = collections.OrderedDict()

    # ------------------------------------------------------------------ what subclasses provide

    def key(self, setting: Mapping[str, Any]) -> Hashable:
        """The part of ``setting`` that :meth:`compute` depends on (default: all of it)."""
        return tuple(sorted(setting.items()))

    def compute(self, setting: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def draw(self, fig, result: Any, setting: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def adjust(self, changed: str) -> None:
        """Called when control ``changed`` changed, before redrawing: update dependent controls
        (e.g. the channel range of a new layer). Changes made here do not trigger more redraws."""

    def describe(self, setting: Mapping[str, Any]) -> str:
        """One line naming the setting (the picture's plain-text alternative)."""
        return ", ".join(f"{k} = {v}" for k, v in setting.items())

    # ------------------------------------------------------------------ the machinery

    @property
    def setting(self) -> Dict[str, Any]:
        """The current ``{control name: value}``."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values) -> "Explorer":
        """Change controls from code (like a student would in the browser); redraws once."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"Unknown control(s) {unknown}; this explorer has {', '.join(self.controls)}.")
        self._adjusting = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
                self.adjust(name)
        finally:
            self._adjusting = False
        self.update()
        return self

    def result(self, setting: Optional[Mapping[str, Any]] = None) -> Any:
        """The computed result for ``setting`` (default: the current one), from the cache if there."""
        setting = self.setting if setting is None else dict(setting)
        key = self.key(setting)
        self._init_state()
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        if getattr(self, "live", False) and hasattr(self, "log"):
            with self.log:
                value = self.compute(setting)
            self.log.clear_output()
        else:
            value = self.compute(setting)
        self.computed += 1
        self._results[key] = value
        while len(self._results) > max(1, getattr(self, "cache_size", 32)):
            self._results.popitem(last=False)
        return value

    def figure(self, setting: Optional[Mapping[str, Any]] = None):
        """A new matplotlib Figure of ``setting`` (default: the current one); not shown by pyplot."""
        from matplotlib.figure import Figure

        setting = self.setting if setting is None else dict(setting)
        value = self.result(setting)
        fig = Figure(figsize=self.figsize, layout="constrained")
        self.draw(fig, value, setting)
        self.drawn += 1
        return fig

    def png(self) -> bytes:
        """The current setting's picture as PNG bytes (drawn once per setting)."""
        full = tuple(sorted(self.setting.items()))
        if self._png is None or self._png_for != full:
            self._png = figure_png(self.figure(), dpi=self.dpi)
            self._png_for = full
        return self._png

    def update(self) -> None:
        """Redraw the picture for the current setting; a failure is shown in the status line."""
        started = time.perf_counter()
        cached = self.key(self.setting) in self._results
        self.status.value = f"<i>computing {self.describe(self.setting)} ...</i>" if not cached else ""
        try:
            png = self.png()
        except Exception as err:  # shown to the student; the previous picture stays
            self.error = f"{type(err).__name__}: {err}"
            self.status.value = f"<span style='color:#b00'>{self.error}</span>"
            if not self.live:
                raise
            return
        self.error = None
        self.image.value = png
        took = time.perf_counter() - started
        self.status.value = (f"{self.describe(self.setting)}" +
                             ("" if cached else f" &middot; computed in {took:.1f} s") +
                             f" &middot; {len(self._results)} setting(s) cached")

    def _on_change(self, change) -> None:
        if self._adjusting:
            return
        self._adjusting = True
        try:
            owner = change["owner"]
            name = next((n for n, c in self.controls.items() if c is owner), None)
            if name is not None:
                self.adjust(name)
        finally:
            self._adjusting = False
        self.update()

    def _repr_mimebundle_(self, include=None, exclude=None):
        if self._png is None or self._png_for != tuple(sorted(self.setting.items())):
            self.update()
        text = f"{type(self).__name__}: {self.describe(self.setting)}"
        static = {"image/png": base64.b64encode(self.png()).decode("ascii"), "text/plain": text}
        if not self.live:
            return static
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data or {})
        data.update(static)
        return data

    def show(self):
        """Display the explorer (same as leaving it as a cell's last expression)."""
        from IPython.display import display

        display(self)
        return self

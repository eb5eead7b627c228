"""What crosses between the trusted grader and the student's kernel, and in which format.

Grader -> kernel (a *call request*): the student name to call, the arguments (tensors and numbers by
value; objects the grader holds under a global name, such as ``model``, as a reference to the kernel's
global of the same name; small ``nn.Module`` objects built by the visible tests, with the source of
their classes), and the names that must not be callable during the call. Sent as a pickle *to* the
kernel: the kernel is the untrusted side, so what it unpickles cannot hurt the grader.

Kernel -> grader (a *reply*): only data. ``torch.save`` of plain tensors, numbers, strings, lists and
dicts, loaded by the grader with ``torch.load(weights_only=True)`` (no code runs while loading) and
checked type by type (:func:`decode`). NumPy arrays, tuples, devices and dtypes travel as tagged dicts.
A kernel that tampers with any of this can only make its own values wrong.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Dict, List

import numpy as np
import torch

MIME = "application/x-labkit-grading"  # the display output that carries a reply
REF = "__labkit_ref__"
MAX_REPLY_CHARS = 400_000_000  # base64 of ~300 MB of tensors: far above any lab's values


class NotData(TypeError):
    """A reply held something other than plain data."""


class GraderError(RuntimeError):
    """The test cannot be evaluated the trusted way (a problem with the lab's test, not the student)."""


# --------------------------------------------------------------------------- kernel side (runs in the sandbox)

KERNEL_HELPER = r'''
def __labkit_grading_call(__request):
    import base64, builtins, importlib, io, sys, types
    import __main__
    import numpy as _np
    import torch as _torch
    from IPython.display import display as _display

    def _encode(v, depth=0):
        if depth > 50:
            raise TypeError("nested too deeply")
        if isinstance(v, _torch.Tensor):
            return v.detach().to("cpu").clone().as_subclass(_torch.Tensor)
        if isinstance(v, _np.ndarray):
            if v.dtype == object:
                raise TypeError("a NumPy array of Python objects")
            return {"__nd__": _torch.from_numpy(_np.ascontiguousarray(v).copy())}
        if isinstance(v, _np.generic):
            return {"__np__": _torch.from_numpy(_np.asarray(v).reshape(1).copy())}
        if v is None or type(v) in (bool, int, float, str, complex):
            return v
        if isinstance(v, (bool, int, float, str)):
            return type(v).__mro__[-2](v) if not isinstance(v, bool) else bool(v)
        if isinstance(v, _torch.device):
            return {"__device__": str(v)}
        if isinstance(v, _torch.dtype):
            return {"__dtype__": str(v).replace("torch.", "")}
        if isinstance(v, tuple):
            return {"__tuple__": [_encode(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return [_encode(x, depth + 1) for x in v]
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {"__dict__": {k: _encode(x, depth + 1) for k, x in v.items()}}
        raise TypeError(f"{type(v).__module__}.{type(v).__qualname__} is not data "
                        "(return tensors, arrays, numbers, strings, lists, tuples or dicts)")

    req = _torch.load(io.BytesIO(base64.b64decode(__request)), weights_only=False)
    if req.get("classes"):  # classes the visible tests define (their instances are arguments)
        mod = sys.modules.setdefault("__labkit_test__", types.ModuleType("__labkit_test__"))
        for k, v in vars(__main__).items():
            mod.__dict__.setdefault(k, v)
        for src in req["classes"]:
            exec(src, mod.__dict__)

    def _resolve(v):
        if isinstance(v, dict) and set(v) == {"__labkit_ref__"}:
            return getattr(__main__, v["__labkit_ref__"])
        if isinstance(v, list):
            return [_resolve(x) for x in v]
        if isinstance(v, tuple):
            return tuple(_resolve(x) for x in v)
        if isinstance(v, dict):
            return {k: _resolve(x) for k, x in v.items()}
        return v

    def _blocked(name):  # no closure: its code can replace the code of any closure-free function
        ns = {}
        exec(f"def forbidden(*args, **kwargs):\n    raise RuntimeError({name + ' may not be used by the function being graded'!r})", ns)
        return ns["forbidden"]

    patched = []

    def _block(owner, attr, orig, dotted):
        stub = _blocked(dotted)
        code = getattr(orig, "__code__", None)
        if isinstance(orig, types.FunctionType) and not code.co_freevars:
            orig.__code__ = stub.__code__  # aliases taken earlier are blocked too
            patched.append((orig, "__code__", code))
        try:
            setattr(owner, attr, stub)
            patched.append((owner, attr, orig))
        except (AttributeError, TypeError):
            pass

    class _NoImport:  # forbidden packages cannot be imported during the call either
        def __init__(self, prefixes):
            self.prefixes = prefixes

        def find_spec(self, name, path=None, target=None):
            if any(name == p or name.startswith(p + ".") for p in self.prefixes):
                raise ImportError(f"{name} may not be used by the function being graded")
            return None

    blocker = _NoImport(list(req.get("forbid", [])))
    try:
        sys.meta_path.insert(0, blocker)
        for dotted in req.get("forbid", []):
            loaded = [m for n, m in list(sys.modules.items()) if m is not None and
                      (n == dotted or n.startswith(dotted + "."))]
            for mod in loaded:  # a forbidden module or package: every function and class in it
                for attr, orig in list(vars(mod).items()):
                    if not attr.startswith("__") and (isinstance(orig, types.FunctionType) or isinstance(orig, type)) \
                            and getattr(orig, "__module__", "").startswith(dotted):
                        _block(mod, attr, orig, f"{mod.__name__}.{attr}")
            if loaded:
                continue
            parts = dotted.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                owner = sys.modules.get(".".join(parts[:cut]))
                if owner is None:
                    continue
                try:
                    for attr in parts[cut:-1]:
                        owner = getattr(owner, attr)
                    orig = getattr(owner, parts[-1])
                except AttributeError:
                    break
                _block(owner, parts[-1], orig, dotted)
                break
        try:
            if req["kind"] == "get":
                obj = getattr(__main__, req["name"])
                reply = {"ok": True, "callable": True} if callable(obj) else {"ok": True, "value": _encode(obj)}
            else:
                fn = getattr(__main__, req["name"])
                args, kwargs = _torch.load(io.BytesIO(req["payload"]), weights_only=False)
                out = fn(*_resolve(args), **_resolve(kwargs))
                reply = {"ok": True, "value": _encode(out)}
        except BaseException as err:
            reply = {"ok": False, "ename": type(err).__name__, "evalue": str(err)[:2000]}
    finally:
        if blocker in sys.meta_path:
            sys.meta_path.remove(blocker)
        for owner, attr, orig in reversed(patched):
            try:
                setattr(owner, attr, orig)
            except (AttributeError, TypeError):
                pass
    buf = io.BytesIO()
    try:
        _torch.save(reply, buf)
    except Exception as err:
        buf = io.BytesIO()
        _torch.save({"ok": False, "ename": "NotData", "evalue": str(err)[:500]}, buf)
    _display({"application/x-labkit-grading": base64.b64encode(buf.getvalue()).decode()}, raw=True)
'''


def request_code(kind: str, name: str, *, args=(), kwargs=None, forbid=(), classes=()) -> str:
    """The code the grader runs in the kernel for one request (the helper is sent every time: stateless).

    ``kind`` is ``"get"`` (the value of global ``name``, or the fact that it is callable) or ``"call"``.
    ``args``/``kwargs`` must already be encoded (:func:`encode_args`); ``classes`` are class sources.
    """
    payload = io.BytesIO()
    torch.save((list(args), dict(kwargs or {})), payload)
    request = {"kind": kind, "name": name, "forbid": list(forbid), "classes": list(classes),
               "payload": payload.getvalue()}
    buf = io.BytesIO()
    torch.save(request, buf)
    return KERNEL_HELPER + f"\n__labkit_grading_call({base64.b64encode(buf.getvalue()).decode()!r})\n"


# --------------------------------------------------------------------------- grader side (trusted)

_PLAIN = (bool, int, float, str, complex, type(None))


def decode(value, depth: int = 0):
    """A reply's payload (already loaded with weights_only=True) back to Python values, type by type."""
    if depth > 60:
        raise NotData("nested too deeply")
    if isinstance(value, torch.Tensor):
        return value.detach().as_subclass(torch.Tensor)
    if type(value) in _PLAIN:
        return value
    if type(value) is list:
        return [decode(v, depth + 1) for v in value]
    if type(value) is dict:
        if set(value) == {"__nd__"} and isinstance(value["__nd__"], torch.Tensor):
            return value["__nd__"].numpy().copy()
        if set(value) == {"__np__"} and isinstance(value["__np__"], torch.Tensor):
            return value["__np__"].numpy().copy()[0]
        if set(value) == {"__tuple__"} and type(value["__tuple__"]) is list:
            return tuple(decode(v, depth + 1) for v in value["__tuple__"])
        if set(value) == {"__device__"} and type(value["__device__"]) is str:
            return torch.device(value["__device__"])
        if set(value) == {"__dtype__"} and type(value["__dtype__"]) is str:
            dtype = getattr(torch, value["__dtype__"], None)
            if isinstance(dtype, torch.dtype):
                return dtype
        if set(value) == {"__dict__"} and type(value["__dict__"]) is dict:
            return {str(k): decode(v, depth + 1) for k, v in value["__dict__"].items()}
    raise NotData(f"unexpected {type(value).__name__} in the reply")


def read_reply(text: str) -> Dict[str, Any]:
    """Parse the base64 reply of one request: ``torch.load(weights_only=True)``, then :func:`decode`."""
    try:
        raw = torch.load(io.BytesIO(base64.b64decode(text, validate=True)), weights_only=True)
    except Exception as err:
        raise NotData(f"the kernel's reply is not data-only ({type(err).__name__})") from None
    if type(raw) is not dict or type(raw.get("ok")) is not bool:
        raise NotData("malformed reply")
    if not raw["ok"]:
        return {"ok": False, "ename": str(raw.get("ename", "Error"))[:200], "evalue": str(raw.get("evalue", ""))[:2000]}
    if raw.get("callable") is True:
        return {"ok": True, "callable": True}
    return {"ok": True, "value": decode(raw.get("value"))}


def encode_args(value, refs: Dict[int, str], classes: List[type], depth: int = 0):
    """Arguments for the kernel: data by value, objects the grader holds under a global name by reference.

    ``refs`` maps id(object) -> global name; ``classes`` collects classes defined by the test itself
    (their source travels with the request).
    """
    if depth > 60:
        raise GraderError("argument nested too deeply")
    if id(value) in refs and not isinstance(value, (_PLAIN, torch.Tensor, np.ndarray)):
        return {REF: refs[id(value)]}
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic, torch.device, torch.dtype)) or type(value) in _PLAIN:
        return value
    if isinstance(value, list):
        return [encode_args(v, refs, classes, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(encode_args(v, refs, classes, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: encode_args(v, refs, classes, depth + 1) for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        for mod in value.modules():
            if type(mod).__module__ == "__labkit_test__" and type(mod) not in classes:
                classes.append(type(mod))
        return value
    raise GraderError(f"cannot pass a {type(value).__name__} to student code (not data, not a named global, "
                      "not an nn.Module)")

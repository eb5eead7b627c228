"""The trusted-verdict protocol, piece by piece (course/grading/wire.py, forbid.py, verdicts.py).

The kernel side of a request is run here in a plain namespace standing in for the kernel's ``__main__``;
the zoo (tests/test_grading_zoo.py) runs the whole protocol against real sandboxed kernels.
"""
from __future__ import annotations

import base64
import io
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.grading import forbid, verdicts, wire  # noqa: E402


def test_replies_round_trip_every_data_type(kernel):
    main, run = kernel
    main.f = lambda: (torch.arange(3.0), np.ones((2, 2)), np.float32(1.5), {"a": [1, "x", None, True]},
                      torch.device("cpu"), torch.int64)
    value = wire.read_reply(run(wire.request_code("call", "f")))["value"]
    assert isinstance(value, tuple) and torch.equal(value[0], torch.arange(3.0))
    assert isinstance(value[1], np.ndarray) and value[1].shape == (2, 2)
    assert isinstance(value[2], np.float32) and value[2] == 1.5
    assert value[3] == {"a": [1, "x", None, True]} and value[4] == torch.device("cpu") and value[5] is torch.int64


def test_a_student_object_never_comes_back_only_data(kernel):
    main, run = kernel

    class AlwaysEqual(torch.Tensor):  # a tensor subclass that would fool comparisons
        def __eq__(self, other):
            return True

    main.sub = lambda: torch.zeros(2).as_subclass(AlwaysEqual)
    got = wire.read_reply(run(wire.request_code("call", "sub")))["value"]
    assert type(got) is torch.Tensor  # the subclass was stripped in the kernel...
    main.obj = lambda: types.SimpleNamespace(x=1)
    reply = wire.read_reply(run(wire.request_code("call", "obj")))
    assert not reply["ok"] and "is not data" in reply["evalue"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/labkit-pwned",))


def test_a_forged_reply_with_code_in_it_is_refused_without_running_anything():
    buf = io.BytesIO()
    torch.save({"ok": True, "value": _Exploit()}, buf)
    with pytest.raises(wire.NotData):
        wire.read_reply(base64.b64encode(buf.getvalue()).decode())
    assert not os.path.exists("/tmp/labkit-pwned")
    with pytest.raises(wire.NotData):
        wire.read_reply("not base64 !!")
    buf = io.BytesIO()
    torch.save({"ok": True, "value": {"__tuple__": 5}}, buf)
    with pytest.raises(wire.NotData):
        wire.read_reply(base64.b64encode(buf.getvalue()).decode())


def test_named_grader_objects_travel_as_references_and_test_classes_as_source(kernel):
    main, run = kernel
    main.model = torch.nn.Linear(2, 1)
    main.apply = lambda m, x: m(x).detach()
    grader_model = torch.nn.Linear(2, 1)  # the grader's own copy, under the same global name
    refs = {id(grader_model): "model"}
    args = wire.encode_args([grader_model, torch.ones(1, 2)], refs, [])
    assert args[0] == {wire.REF: "model"}
    got = wire.read_reply(run(wire.request_code("call", "apply", args=args)))["value"]
    assert torch.allclose(got, main.model(torch.ones(1, 2)).detach())  # the kernel's model, not a copy
    with pytest.raises(wire.GraderError):
        wire.encode_args([lambda: 1], {}, [])


def test_forbidden_names_raise_in_the_kernel_during_the_call_only(kernel):
    main, run = kernel
    import labkit.quantize as q
    from labkit.quantize import fake_quantize as taken_early

    main.honest = lambda t, bits: t.round()
    main.wrapper = lambda t, bits: q.fake_quantize(t, bits)
    main.alias = lambda t, bits: taken_early(t, bits)
    for name, ok in (("honest", True), ("wrapper", False), ("alias", False)):
        for forbid_list in (["labkit.quantize.fake_quantize"], ["labkit.quantize"]):
            reply = wire.read_reply(run(wire.request_code("call", name, args=[torch.ones(3), 4], forbid=forbid_list)))
            assert reply["ok"] is ok, (name, forbid_list, reply)
    assert torch.equal(q.fake_quantize(torch.ones(2), 4), torch.ones(2))  # restored afterwards


def test_static_check_finds_forbidden_calls_through_aliases_but_not_local_names():
    aliases = forbid.import_aliases(["import torch\nfrom labkit import saliency, layers\n%matplotlib inline"])
    banned = ["labkit.saliency.vanilla", "labkit.layers.PrePost.zeroed"]
    check = lambda src: forbid.violations([src], banned, aliases)  # noqa: E731
    assert check("def f(m, x, t):\n    return saliency.vanilla(m, x, t)") == ["uses labkit.saliency.vanilla"]
    assert check("from labkit.saliency import vanilla as v\ndef f(m, x, t):\n    return v(m, x, t)")
    assert check("def f(b, a):\n    return layers.PrePost('x', 'relu', b, a).zeroed()")
    assert "getattr" in check("def f(m, x, t):\n    return getattr(saliency, 'van' + 'illa')(m, x, t)")[0]
    honest = ("def f(model, x, t):\n    saliency = x.detach().clone().requires_grad_(True)\n"
              "    out = model(saliency)\n    return [m for m in model.modules()], out")
    assert check(honest) == []
    assert forbid.violations(["saliency.vanilla(1)"], [], aliases) == []


def test_test_cells_declare_what_they_grade_and_what_they_use():
    src = ("assert f(1) == 1\n### BEGIN HIDDEN TESTS\n_grading = dict(calls=['f'],\n    forbid=['torch.relu'])\n"
           "_x = model(torch.ones(1))\nassert g(_x)\n### END HIDDEN TESTS\n")
    spec = verdicts.test_spec(src)
    assert spec.calls == ["f"] and spec.forbid == ["torch.relu"]
    assert verdicts.free_names(src) == {"f", "g", "model", "torch"}
    assert verdicts.test_spec("assert True").calls == []

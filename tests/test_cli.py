"""The labkit command line: doctor, layers, weights."""
import subprocess
import sys
from pathlib import Path

from labkit.cli import main


def test_doctor_reports_versions_device_cache_and_tools(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for needle in ("torch", "CUDA", "device", "weights cache", "efficientnet_lite0", "nbgrader", "jupyterlab"):
        assert needle in out, needle


def test_layers_vgg16_prints_handout_table(capsys):
    assert main(["layers", "vgg16", "--conv-only"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("0 ", "10 ", "28 "))]
    assert len(lines) == 3 and "features.10" in lines[1] and "256x56x56" in lines[1]


def test_bad_input_is_one_clear_line_not_a_traceback(capsys):
    assert main(["layers", "vgg17"]) == 2
    err = capsys.readouterr().err
    assert "Valid choices" in err and "Traceback" not in err


def test_weights_fetch_fails_clearly_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["weights", "fetch", "efficientnet_lite0"]) == 0  # bundled: nothing to fetch
    assert "nothing to fetch" in capsys.readouterr().out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "labkit"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("labkit ")


def test_featurevis_defaults_come_from_the_layer_table():
    from labkit.cli import default_target
    from labkit.layers import check_channels, layer_info
    from labkit.models import load_model

    for name, expected in (("vgg16", "features.14"), ("efficientnet_lite0", None)):
        model = load_model(name, pretrained=False, device="cpu")
        layer, channels = default_target(model)
        row = layer_info(model, layer)
        assert row.is_conv and row.activation is not None and model.get_submodule(layer).groups == 1
        assert expected is None or layer == expected
        assert check_channels(model, layer, channels) == channels and len(channels) == 6
        assert channels[0] == 0 and channels[-1] == row.channels - 1


def test_cli_never_imports_the_course():
    import ast

    source = (Path(__file__).resolve().parent.parent / "labkit" / "cli.py").read_text()
    modules = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not any(m == "course" or m.startswith("course.") for m in modules), modules


def test_layers_of_the_caffe_vgg19_without_weights(capsys):
    assert main(["layers", "vgg19_caffe", "--conv-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vgg19_caffe: input 3x224x224") and "features.34" in out

"""Tests for labkit.images: shipped photos, loading every kind of file, pre/de-processing, class names."""
from __future__ import annotations

import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from course.examples import duke_examples
from labkit.images import (
    class_index,
    denormalize,
    deprocess,
    labelled_images,
    load_image,
    normalize,
    preprocess,
    sample_images,
    to_tensor01,
)
from labkit.models import imagenet_class_names as imagenet_classes

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "images"
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model(lite0):
    """The bundled EfficientNet-Lite0 (real weights, offline; conftest's session fixture), with model.labkit."""
    return lite0


@pytest.fixture(scope="module")
def predictions(model):
    """Top-5 class names for every shipped photo, from one batched forward pass (squash preprocessing)."""
    names = list(sample_images())
    x = preprocess([sample_images()[n] for n in names], model)
    with torch.no_grad():
        probs = model(x).softmax(1)
    classes = imagenet_classes()
    return {n: [classes[i] for i in p.topk(5).indices.tolist()] for n, p in zip(names, probs)}


def _solid(mode, size, color):
    return Image.new(mode, size, color)


# --------------------------------------------------------------------------- shipped photos


def test_sample_images_all_present_small_rgb():
    paths = sample_images()
    assert set(paths) == {"cat", "coffee", "rocket", "grace_hopper", "china", "flower", "bee", "chameleon",
                          "citrus", "bridge", "dog", "cat2", "dog_and_cat"}
    total = 0
    for name, path in paths.items():
        assert path.is_file(), name
        assert path.parent == DATA
        with Image.open(path) as im:
            assert max(im.size) <= 512, (name, im.size)
            assert im.mode == "RGB", (name, im.mode)
        total += path.stat().st_size
    all_files = sum(p.stat().st_size for p in DATA.iterdir() if p.is_file())
    assert total < all_files <= 3 * 1024 * 1024


def test_attribution_covers_every_file_with_an_allowed_licence():
    text = (DATA / "ATTRIBUTION.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*$", text, re.M)}
    shipped = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
               if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}}
    assert shipped == set(rows), "every shipped photo needs exactly one ATTRIBUTION.md row"
    assert len(rows) == len(re.findall(r"^\| `[^`]+` \|", text, re.M)), "one row per photo"
    for fname, row in rows.items():
        lic = row.split(" | ")[5].lower()
        assert "public domain" in lic or "cc0" in lic or "cc-by" in lic, (fname, lic)
        assert not any(bad in lic for bad in ("-sa", "-nc", "-nd", "fdl", "gpl")), (fname, lic)
        assert "resized" in row or "kept at full size" in row, fname


# --------------------------------------------------------------------------- the labelled photo set


def _attribution_rows():
    text = (DATA / "ATTRIBUTION.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*$", text, re.M)}


def test_labelled_images_enough_photos_and_classes_all_licensed():
    pairs = labelled_images()
    paths = [p for p, _ in pairs]
    targets = [t for _, t in pairs]
    assert len(pairs) >= 100 and len(set(paths)) == len(paths)
    assert len(set(targets)) >= 30
    assert all(isinstance(t, int) and 0 <= t < 1000 for t in targets)
    rows = _attribution_rows()
    for path in paths:
        assert path.is_file() and DATA in path.parents
        row = rows[path.relative_to(DATA).as_posix()]  # every photo listed, with an allowed licence
        lic = row.split(" | ")[5].lower()
        assert "public domain" in lic or "cc0" in lic or "cc-by" in lic, (path.name, lic)
        assert not any(bad in lic for bad in ("-sa", " sa", "-nc", "-nd", "fdl", "gpl")), (path.name, lic)
        # GCompris' world animals stay an independent check (only the chameleon sample comes from there)
        assert "explore_world_animals" not in row or path.name == "chameleon.jpg", path.name
    shipped = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert shipped < 15 * 1024 * 1024


def test_labelled_images_class_names_agree_with_the_class_list():
    """labels.csv carries each class twice (index and name): the two agree with the one class list."""
    import csv

    classes = imagenet_classes()
    with open(DATA / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(DATA / r["file"], int(r["class_index"])) for r in rows] == [tuple(p) for p in labelled_images()]
    for r in rows:
        assert classes[int(r["class_index"])] == r["class_name"], r
        assert class_index(r["class_name"]) == int(r["class_index"])


def test_labelled_images_sizes():
    for path, _ in labelled_images():
        with Image.open(path) as im:
            assert im.mode == "RGB" and min(im.size) <= 512, (path.name, im.size)


def test_bundled_model_top5_on_labelled_set(model, capsys):
    """The bundled EfficientNet-Lite0 recognises the labelled photos: top-5 >= 80% (squashed, as the labs do)."""
    pairs = labelled_images()
    targets = torch.tensor([t for _, t in pairs])
    rates = {}
    for crop in (False, True):
        with torch.no_grad():
            logits = torch.cat([model(preprocess([p for p, _ in pairs[i:i + 32]], model, crop=crop))
                                for i in range(0, len(pairs), 32)])
        top5 = logits.topk(5, dim=1).indices.cpu()
        rates[crop] = (float((top5[:, 0] == targets).float().mean()),
                       float((top5 == targets[:, None]).any(1).float().mean()))
    with capsys.disabled():
        print(f"\nlabelled set, {len(pairs)} photos: top-1 {rates[False][0]:.1%}, top-5 {rates[False][1]:.1%} "
              f"(squash); top-1 {rates[True][0]:.1%}, top-5 {rates[True][1]:.1%} (centre crop)")
    assert rates[False][1] >= 0.8, rates
    assert rates[False][0] > 0.5, rates  # far above chance (0.1%): the labels are the photos' classes


def test_dog_and_cat_composite_is_two_to_one_dog_left():
    with Image.open(sample_images()["dog_and_cat"]) as im:
        w, h = im.size
    assert 1.9 <= w / h <= 2.3
    assert "dog LEFT, cat RIGHT" in (DATA / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_duke_examples():
    ex = duke_examples()
    assert [e.name for e in ex] == ["chameleon", "dog_and_cat", "bee"]
    assert [e.target for e in ex] == [class_index("agama"), class_index("German shepherd"),
                                      class_index("bee")] == [42, 235, 309]
    for name, path, target in ex:  # plain tuples too
        assert path == sample_images()[name] and path.is_file()


def test_labkit_data_env(tmp_path, monkeypatch):
    shutil.copytree(DATA, tmp_path / "images")
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    assert sample_images()["cat"] == tmp_path / "images" / "cat.jpg"
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "images"))
    assert sample_images()["dog"] == tmp_path / "images" / "dog.jpg"
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="LABKIT_DATA"):
        sample_images()


# --------------------------------------------------------------------------- model behaviour on the photos


def test_cat_top3_has_a_cat(predictions):
    assert CAT_CLASSES & set(predictions["cat"][:3]), predictions["cat"]


def test_coffee_top1_espresso(predictions):
    assert predictions["coffee"][0] == "espresso", predictions["coffee"]


def test_dog_top1_german_shepherd(predictions):
    assert predictions["dog"][0] == "German shepherd", predictions["dog"]
    assert predictions["dog_and_cat"][0] == "German shepherd", predictions["dog_and_cat"]


def test_duke_targets_are_what_the_photos_show(predictions):
    assert predictions["bee"][0] == "bee", predictions["bee"]
    reptiles = {"agama", "African chameleon"}  # the photo is a garden lizard (an agamid)
    assert reptiles & set(predictions["chameleon"][:2]), predictions["chameleon"]
    assert "African chameleon" in predictions["chameleon"], predictions["chameleon"]


def test_cat_recognised_with_centre_crop_too(model):
    x = preprocess(["cat", "cat2"], model, crop=True)
    with torch.no_grad():
        top = model(x).topk(3, dim=1).indices
    classes = imagenet_classes()
    for row in top.tolist():
        assert CAT_CLASSES & {classes[i] for i in row}


# --------------------------------------------------------------------------- load_image: every kind of file


def test_load_sample_name_and_path_and_pil_agree():
    a = load_image("cat")
    b = load_image(sample_images()["cat"])
    c = load_image(str(sample_images()["cat"]))
    with Image.open(sample_images()["cat"]) as src:
        d = load_image(src)
    assert a.mode == "RGB" and a.size == (451, 300)
    for other in (b, c, d):
        assert np.array_equal(np.asarray(a), np.asarray(other))


def test_rgba_composited_on_white(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., 0] = 255  # red ...
    arr[:2, :, 3] = 0  # ... fully transparent on top -> white
    arr[2:, :, 3] = 255  # ... opaque below -> red
    arr[3, 3] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(load_image(tmp_path / "a.png")).astype(int)
    assert out.shape == (4, 4, 3)
    assert (out[:2] == 255).all()
    assert (out[2, :] == (255, 0, 0)).all()
    assert np.abs(out[3, 3] - 127).max() <= 1


def test_la_and_grey(tmp_path):
    la = np.zeros((3, 3, 2), np.uint8)
    la[..., 0] = 40
    la[0, :, 1] = 0
    la[1:, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = np.asarray(load_image(tmp_path / "la.png"))
    assert (out[0] == 255).all() and (out[1:] == 40).all()

    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    out = np.asarray(load_image(tmp_path / "l.png"))
    assert out.shape == (16, 16, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], grey)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 2), 0)
    im.putpalette([0, 0, 255, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (2, 0, 4, 2))
    im.save(tmp_path / "p.png", transparency=0)  # index 0 (blue) transparent
    im.save(tmp_path / "p_opaque.png")
    out = np.asarray(load_image(tmp_path / "p.png"))
    assert (out[:, :2] == 255).all() and (out[:, 2:] == (0, 255, 0)).all()
    out = np.asarray(load_image(tmp_path / "p_opaque.png"))
    assert (out[:, :2] == (0, 0, 255)).all()


@pytest.mark.parametrize("mode,key", [("RGB", (10, 20, 30)), ("L", 7)])
def test_transparent_colour_key(tmp_path, mode, key):
    im = Image.new(mode, (2, 2), 0)
    im.paste(key, (0, 0, 2, 1))  # top row is the transparent colour
    im.save(tmp_path / "k.png", transparency=key)
    out = np.asarray(load_image(tmp_path / "k.png"))
    assert (out[0] == 255).all() and (out[1] == 0).all()


def test_sixteen_bit_png_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 257 * 64, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode in ("I;16", "I")  # depending on Pillow
    out = np.asarray(load_image(tmp_path / "g16.png"))[..., 0]
    assert out.tolist() == [[0, 64, 128, 255]]


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_sixteen_bit_pil_modes(mode):
    arr = np.array([[0, 257 * 64, 32896, 65535]], dtype=np.uint16)
    im = Image.fromarray(arr).convert("I") if mode == "I" else Image.fromarray(arr.astype(">u2" if mode == "I;16B" else "<u2"))
    assert im.mode == mode
    out = np.asarray(load_image(im))[..., 0]
    assert out.tolist() == [[0, 64, 128, 255]]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    out = np.asarray(load_image(tmp_path / "cmyk.jpg")).astype(int)
    assert out.shape == (16, 16, 3)
    assert np.abs(out - (255, 0, 0)).max() <= 6


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)  # stored 40 wide, 20 high: left red, right blue
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.size == (20, 40)  # displayed portrait
    a = np.asarray(out).astype(int)
    assert np.abs(a[5, 10] - (255, 0, 0)).max() < 30  # left side went to the top
    assert np.abs(a[35, 10] - (0, 0, 255)).max() < 30
    with Image.open(tmp_path / "rot.jpg") as src:  # an already opened PIL image gets the same treatment
        assert load_image(src).size == (20, 40)


def test_numpy_inputs():
    f = np.full((5, 6, 3), 0.5, np.float32)
    assert np.asarray(load_image(f)).max() == 128
    g = np.full((5, 6), 65535, np.uint16)
    out = np.asarray(load_image(g))
    assert out.shape == (5, 6, 3) and (out == 255).all()
    with pytest.raises(ValueError, match="HxW"):
        load_image(np.zeros((3, 5, 6)))


def test_huge_png_is_downscaled(tmp_path):
    im = Image.new("L", (9000, 9000), 0)
    im.paste(255, (0, 0, 4500, 9000))  # left half white
    im.save(tmp_path / "huge.png", compress_level=1)
    del im
    out = load_image(tmp_path / "huge.png")
    assert out.size == (2048, 2048) and out.mode == "RGB"
    assert out.getpixel((100, 100)) == (255, 255, 255) and out.getpixel((2000, 100)) == (0, 0, 0)
    assert load_image(tmp_path / "huge.png", max_size=300).size == (300, 300)


def test_jpeg_beyond_pil_bomb_limit_loads_without_disabling_the_guard(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    side = int((2 * limit) ** 0.5) + 100  # past PIL's hard error threshold (2x MAX_IMAGE_PIXELS)
    Image.new("L", (side, side + 1), 200).save(tmp_path / "bomb.jpg", quality=50)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "bomb.jpg")
    out = load_image(tmp_path / "bomb.jpg", max_size=512)
    assert max(out.size) == 512 and out.getpixel((5, 5)) == (200, 200, 200)
    assert Image.MAX_IMAGE_PIXELS == limit  # guard restored
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "bomb.jpg")


def test_missing_file_error_names_path_and_samples(tmp_path):
    missing = tmp_path / "no_such_photo.jpg"
    with pytest.raises(FileNotFoundError) as err:
        load_image(missing)
    msg = str(err.value)
    assert "no_such_photo.jpg" in msg and "dog_and_cat" in msg and "grace_hopper" in msg
    with pytest.raises(FileNotFoundError):
        load_image("kitten")  # neither a file nor a sample name


def test_corrupt_and_non_image_files(tmp_path):
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("noise.jpg", "notes.txt", "empty.png"):
        with pytest.raises(ValueError, match="not a readable image"):
            load_image(tmp_path / name)
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("global_truncated_ok", [False, True])
def test_truncated_files_fail_clearly(tmp_path, monkeypatch, fmt, global_truncated_ok):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", global_truncated_ok)
    noise = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    path = tmp_path / f"t.{fmt.lower()}"
    Image.fromarray(noise).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is global_truncated_ok  # the user's setting is restored


# --------------------------------------------------------------------------- preprocess / deprocess


def test_preprocess_shape_device_dtype(model):
    x = preprocess("dog", model)
    p = next(model.parameters())
    assert x.shape == (1, 3, 224, 224) and x.device == p.device and x.dtype == torch.float32
    xs = preprocess(["dog", sample_images()["cat"], load_image("coffee")], model)
    assert xs.shape == (3, 3, 224, 224)
    assert torch.equal(xs[0], x[0])
    assert preprocess("dog", model, size=160).shape == (1, 3, 160, 160)
    assert preprocess("dog", model, size=(100, 200)).shape == (1, 3, 100, 200)


def test_preprocess_normalises_with_the_models_stats():
    model = torch.nn.Conv2d(3, 1, 1)
    model.labkit = types.SimpleNamespace(input_size=8, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                                         interpolation="bilinear")
    x = preprocess(Image.new("RGB", (30, 20), (255, 0, 51)), model)
    expect = (torch.tensor([1.0, 0.0, 0.2]) - torch.tensor(model.labkit.mean)) / torch.tensor(model.labkit.std)
    assert x.shape == (1, 3, 8, 8)
    assert torch.allclose(x[0, :, 4, 4], expect, atol=1e-6)


def test_preprocess_follows_model_device_and_dtype():
    model = torch.nn.Conv2d(3, 1, 1, device="meta", dtype=torch.float64)
    model.labkit = types.SimpleNamespace(input_size=16, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic")
    x = preprocess("cat", model)
    assert x.device.type == "meta" and x.dtype == torch.float64
    assert preprocess("cat", model, device="cpu").device.type == "cpu"


def test_preprocess_without_labkit_needs_mean_std():
    bare = torch.nn.Conv2d(3, 1, 1)
    with pytest.raises(ValueError, match="mean"):
        preprocess("cat", bare)
    x = preprocess("cat", bare, size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert x.shape == (1, 3, 32, 32)
    expect = np.asarray(load_image("cat").resize((32, 32), Image.Resampling.BILINEAR), np.float32) / 255
    assert np.abs(deprocess(x, mean=(0.5,) * 3, std=(0.25,) * 3) - expect).max() < 1e-5
    with pytest.raises(ValueError, match="interpolation"):
        preprocess("cat", bare, size=32, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="fancy")


def test_squash_matches_torchvision_reference(model):
    from torchvision import transforms as T

    ref = T.Compose([T.Resize((224, 224), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                     T.Normalize(model.labkit.mean, model.labkit.std)])
    img = load_image("bridge")
    assert torch.allclose(preprocess(img, model), ref(img)[None], atol=1e-6)


def test_crop_matches_timm_eval_transform(model):
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["crop_pct"] == 0.875 and cfg["interpolation"] == model.labkit.interpolation
    ref = timm.data.create_transform(**cfg)
    for name in ("grace_hopper", "bee"):  # portrait and landscape
        img = load_image(name)
        assert torch.allclose(preprocess(img, model, crop=True), ref(img)[None], atol=1e-6), name


def test_deprocess_round_trip_and_shapes(model):
    img = load_image("coffee")
    x = preprocess(img, model)
    back = deprocess(x, model)
    expect = np.asarray(img.resize((224, 224), Image.Resampling.BICUBIC), np.float32) / 255
    assert back.shape == (224, 224, 3) and back.dtype == np.float32
    assert np.abs(back - expect).max() < 1e-5
    assert deprocess(x[0], model).shape == (224, 224, 3)
    two = deprocess(torch.cat([x, x]), model)
    assert two.shape == (2, 224, 224, 3)
    wild = deprocess(torch.randn(1, 3, 8, 8) * 10, model)
    assert wild.min() >= 0 and wild.max() <= 1


def test_normalize_denormalize_are_inverse_and_differentiable(model):
    x01 = torch.rand(2, 3, 5, 5, requires_grad=True)
    x = normalize(x01, model)
    assert torch.allclose(denormalize(x, model), x01, atol=1e-6)
    x.sum().backward()
    assert torch.allclose(x01.grad, torch.full_like(x01, 1 / 0.5))
    with pytest.raises(ValueError, match=r"\[N,3,H,W\]"):
        normalize(torch.rand(2, 4, 5, 5), model)


def test_to_tensor01():
    x = to_tensor01("cat")
    assert x.shape == (1, 3, 300, 451) and 0 <= x.min() and x.max() <= 1
    assert to_tensor01(["cat", "dog"], 64).shape == (2, 3, 64, 64)
    assert to_tensor01(x, (32, 48)).shape == (1, 3, 32, 48)
    with pytest.raises(ValueError, match="different sizes"):
        to_tensor01(["cat", "dog"])


# --------------------------------------------------------------------------- class names


def test_imagenet_classes_offline():
    classes = imagenet_classes()
    assert len(classes) == 1000 and len(set(classes)) == 1000
    assert classes[235] == "German shepherd" and classes[967] == "espresso"


def test_class_index():
    assert class_index("German shepherd") == 235
    assert class_index("german_shepherd") == class_index("GERMAN SHEPHERD") == 235
    assert class_index("tabby") == 281
    assert class_index(42) == class_index("42") == 42
    assert class_index(np.int64(7)) == 7
    with pytest.raises(ValueError, match="German shepherd"):
        class_index("germn shepherd")
    with pytest.raises(ValueError, match="tiger cat"):
        class_index("cat")
    with pytest.raises(IndexError, match="0..999"):
        class_index(1000)
    with pytest.raises(ValueError, match="several"):
        class_index("crane", classes=["crane", "dog", "crane"])

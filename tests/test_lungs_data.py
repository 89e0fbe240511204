"""Lung data: JSRT-style and folder fixtures through the TFDS cache, errors, cache reuse, synthetic set."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxadl.data import lungs
from jaxadl.data.base import DatasetError
from jaxadl.data.lungs import images as lungs_images
from jaxadl.data.lungs import jsrt as lungs_jsrt

RAW = 64  # fixture side for .IMG files (real JSRT: 2048)
MASK = 32  # fixture side for SCR GIFs (real: 1024)


def _case_names(n_ln: int = 6, n_nn: int = 4) -> list[str]:
    return [f"JPCLN{i:03d}" for i in range(1, n_ln + 1)] + [f"JPCNN{i:03d}" for i in range(1, n_nn + 1)]


def _write_jsrt(root: Path, names: list[str], *, raw_side: int = RAW, mask_side: int = MASK) -> None:
    (root / "images" / "All247images").mkdir(parents=True)
    masks = root / "scr" / "fold1" / "masks"
    left, right = masks / "left lung", masks / "right lung"
    left.mkdir(parents=True)
    right.mkdir(parents=True)
    for k, name in enumerate(names):
        raw = np.full((raw_side, raw_side), 100 * k, dtype=">u2")
        raw[0, 0], raw[0, 1] = 0, 4095
        raw.tofile(root / "images" / "All247images" / f"{name}.IMG")
        lm = np.zeros((mask_side, mask_side), np.uint8)
        rm = np.zeros((mask_side, mask_side), np.uint8)
        lm[8:24, 4:12] = 255
        rm[8:24, 20:28] = 255
        rm[4:8, 4 + k % 3 : 8] = 255  # per-case detail so masks differ
        Image.fromarray(lm).save(left / f"{name}.gif")
        Image.fromarray(rm).save(right / f"{name}.gif")


@pytest.fixture
def jsrt_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jsrt"
    _write_jsrt(root, _case_names())
    return root


def test_jsrt_split_rule_full_size() -> None:
    split = lungs.jsrt_split(_case_names(154, 93))
    assert [len(split[k]) for k in ("train", "val", "test")] == [112, 12, 123]
    assert split["val"] == [f"JPCNN{i:03d}" for i in range(71, 94, 2)]
    assert split["train"][:2] == ["JPCLN001", "JPCLN003"] and split["train"][-1] == "JPCNN069"
    assert split["test"][0] == "JPCLN002" and split["test"][-1] == "JPCNN092"


def test_val_fraction_draws_jsrts_validation_again_and_0_trains_on_the_whole_train_fold(jsrt_dir, tmp_path):
    from experiments import unet

    common = dict(data_dir=str(jsrt_dir), image_size=RAW, cache_dir=str(tmp_path / "cache"))
    report = unet.load_data(unet.UNetConfig(**common))  # the default: the report's split
    assert (len(report.train), len(report.val)) == (4, 1)
    fold = sorted(report.meta["cases"]["train"] + report.meta["cases"]["val"])
    final = unet.load_data(unet.UNetConfig(**common, val_fraction=0.0))  # the final fit
    assert final.val is None and len(final.train) == 5 and sorted(final.meta["cases"]["train"]) == fold
    assert final.meta["cases"]["test"] == report.meta["cases"]["test"]
    redrawn = unet.load_data(unet.UNetConfig(**common, val_fraction=0.4))
    assert (len(redrawn.train), len(redrawn.val)) == (3, 2)
    assert sorted(redrawn.meta["cases"]["train"] + redrawn.meta["cases"]["val"]) == fold
    seeded = [
        unet.load_data(unet.UNetConfig(**common, split_seed=s)).meta["cases"]["val"] for s in range(1, 6)
    ]
    assert {len(v) for v in seeded} == {1} and len({v[0] for v in seeded}) > 1  # --split-seed draws again
    names = final.meta["cases"]["train"]  # each case keeps its image and mask
    image, mask = (dict(zip(names, a, strict=True)) for a in (final.train.images, final.train.labels))
    for split in ("train", "val"):
        part = getattr(redrawn, split)
        for name, img, lab in zip(redrawn.meta["cases"][split], part.images, part.labels, strict=True):
            np.testing.assert_array_equal(img, image[name])
            np.testing.assert_array_equal(lab, mask[name])


def test_load_jsrt_fixture(jsrt_dir: Path, tmp_path: Path) -> None:
    ds = lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=tmp_path / "cache", progress=False)
    assert ds.name == "jsrt" and ds.num_classes == 1
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4, 1, 5)
    names = _case_names()
    assert ds.meta["cases"] == {"train": names[0:8:2], "val": [names[8]], "test": names[1::2]}
    for split in ds.splits().values():
        assert split.images.shape[1:] == (RAW, RAW, 1) and split.images.dtype == np.uint8
        assert split.labels.shape[1:] == (RAW, RAW, 1) and split.labels.dtype == np.uint8
        assert set(np.unique(split.labels)) <= {0, 1}
    # Intensity: 1 - raw/4096 scaled to 0..255; case k has raw 100*k in the body of the image.
    img = ds.train.images[1, ..., 0]  # JPCLN003, k=2
    assert img[0, 0] == 255 and img[0, 1] == 0
    assert img[10, 10] == round((1 - 200 / 4096) * 255)
    assert ds.test.images[0, 10, 10, 0] == round((1 - 100 / 4096) * 255)  # JPCLN002, k=1
    # Mask: union of left and right lung, upsampled 32 -> 64 with nearest-like behaviour.
    m = ds.train.labels[0, ..., 0]
    expected = np.zeros((MASK, MASK), bool)
    expected[8:24, 4:12] = expected[8:24, 20:28] = True
    expected[4:8, 4:8] = True
    np.testing.assert_array_equal(m, np.kron(expected, np.ones((2, 2))).astype(np.uint8))


def test_jsrt_downsampled_and_env(jsrt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lungs.JSRT_ENV, str(jsrt_dir))
    monkeypatch.setenv("JAXADL_DATA_DIR", str(tmp_path / "envcache"))
    ds = lungs.load_jsrt(image_size=16, progress=False)
    assert ds.train.images.shape == (4, 16, 16, 1)
    assert set(np.unique(ds.train.labels)) == {0, 1}
    assert (tmp_path / "envcache" / "jaxadl_jsrt").is_dir()


def test_preparation_leaves_no_temp_folders(
    jsrt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TFDS made an empty tmp*tfds folder for every builder not prepared yet; none may be left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    ds = lungs.load_jsrt(jsrt_dir, image_size=16, cache_dir=tmp_path / "cache", progress=False)
    assert ds.train.images.shape == (4, 16, 16, 1)
    assert list(tmp.iterdir()) == []


def test_jsrt_missing_mask(jsrt_dir: Path, tmp_path: Path) -> None:
    (jsrt_dir / "scr" / "fold1" / "masks" / "right lung" / "JPCNN002.gif").unlink()
    with pytest.raises(DatasetError, match=r"JPCNN002\.IMG.*right lung"):
        lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=tmp_path / "cache", progress=False)


def test_jsrt_mask_without_image(jsrt_dir: Path, tmp_path: Path) -> None:
    (jsrt_dir / "images" / "All247images" / "JPCLN004.IMG").unlink()
    with pytest.raises(DatasetError, match=r"JPCLN004\.gif"):
        lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=tmp_path / "cache", progress=False)


def test_jsrt_bad_raw_size_leaves_no_cache(jsrt_dir: Path, tmp_path: Path) -> None:
    bad = jsrt_dir / "images" / "All247images" / "JPCNN003.IMG"
    bad.write_bytes(b"\0" * 1000)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="JPCNN003.IMG"):
        lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=cache, progress=False)
    assert not list(cache.rglob("dataset_info.json"))  # nothing a later call would take as finished
    np.full((RAW, RAW), 7, ">u2").tofile(bad)
    ds = lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=cache, progress=False)
    assert len(ds.val) == 1 and ds.val.images[0, 5, 5, 0] == round((1 - 7 / 4096) * 255)


def test_jsrt_missing_dir_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lungs.JSRT_ENV, raising=False)
    with pytest.raises(DatasetError, match=lungs.JSRT_ENV):
        lungs.load_jsrt(cache_dir=tmp_path)
    with pytest.raises(DatasetError, match="nowhere"):
        lungs.load_jsrt(tmp_path / "nowhere", cache_dir=tmp_path)


def test_cache_reuse_does_not_read_source(
    jsrt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=cache, progress=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("source read again")

    monkeypatch.setattr(lungs_jsrt, "_read_jsrt_raw", forbidden)
    monkeypatch.setattr(lungs_jsrt, "open_mask_values", forbidden)
    second = lungs.load_jsrt(jsrt_dir, image_size=RAW, cache_dir=cache, progress=False)
    for a, b in zip(first.splits().values(), second.splits().values(), strict=True):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
    # A different size is a different cache entry (it must read the source, which is now forbidden).
    with pytest.raises(AssertionError, match="source read again"):
        lungs.load_jsrt(jsrt_dir, image_size=32, cache_dir=cache, progress=False)


# ---------------------------------------------------------------------------------------------- folder


def _write_folder(root: Path, n: int = 10) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = 40 + 8 * i, 48 + 4 * i
        ext = ".png" if i % 3 else ".jpg"
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"case{i:02d}{ext}")
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : 3 * h // 4, w // 4 : w // 2] = 1 if i % 2 else 255
        Image.fromarray(mask).save(root / "masks" / f"case{i:02d}.png")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    _write_folder(root)
    return root


def test_load_lung_folder(folder: Path, tmp_path: Path) -> None:
    ds = lungs.load_lung_folder(folder, image_size=32, cache_dir=tmp_path / "c1", progress=False)
    assert ds.name == "lung-folder" and ds.num_classes == 1
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4, 1, 5)
    for split in ds.splits().values():
        assert split.images.shape[1:] == (32, 32, 1) and split.images.dtype == np.uint8
        assert split.labels.shape[1:] == (32, 32, 1)
        assert set(np.unique(split.labels)) == {0, 1}  # both {0,1} and {0,255} masks become {0,1}
        assert 0.08 < split.labels.mean() < 0.2
    all_cases = sorted(sum(ds.meta["cases"].values(), []))
    assert all_cases == [f"case{i:02d}" for i in range(10)]
    # Seeded split: same seed -> same cases (a fresh cache), other seed -> other cases.
    again = lungs.load_lung_folder(folder, image_size=32, cache_dir=tmp_path / "c2", progress=False)
    assert again.meta["cases"] == ds.meta["cases"]
    np.testing.assert_array_equal(again.test.images, ds.test.images)
    other = lungs.load_lung_folder(folder, image_size=32, seed=1, cache_dir=tmp_path / "c1", progress=False)
    assert other.meta["cases"] != ds.meta["cases"]


def test_folder_split_rule() -> None:
    stems = [f"s{i}" for i in range(100)]
    split = lungs.folder_split(stems, val_fraction=0.1, test_fraction=0.5, seed=3)
    assert [len(split[k]) for k in ("train", "val", "test")] == [45, 5, 50]
    assert split == lungs.folder_split(stems[::-1], val_fraction=0.1, test_fraction=0.5, seed=3)
    assert split != lungs.folder_split(stems, val_fraction=0.1, test_fraction=0.5, seed=4)
    tiny = lungs.folder_split(["a", "b"], val_fraction=0.5, test_fraction=0.5, seed=0)
    assert [len(tiny[k]) for k in ("train", "val", "test")] == [1, 0, 1]


def test_folder_mismatched_names(folder: Path, tmp_path: Path) -> None:
    (folder / "masks" / "case03.png").rename(folder / "masks" / "case03_mask.png")
    with pytest.raises(DatasetError, match=r"case03\.jpg.*case03_mask\.png"):
        lungs.load_lung_folder(folder, image_size=32, cache_dir=tmp_path / "c", progress=False)


def test_folder_non_binary_mask(folder: Path, tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 128], [255, 7]], np.uint8)).save(folder / "masks" / "case05.png")
    with pytest.raises(DatasetError, match=r"case05\.png.*0, 7, 128, 255"):
        lungs.load_lung_folder(folder, image_size=32, cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").rglob("dataset_info.json"))


def test_folder_unreadable_file(folder: Path, tmp_path: Path) -> None:
    (folder / "images" / "case07.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"case07\.png"):
        lungs.load_lung_folder(folder, image_size=32, cache_dir=tmp_path / "c", progress=False)


def _write_cases(root: Path, names: list[str], side: int = 40, mask_side: int | None = None) -> None:
    """Square gray PNG cases with {0,255} masks (mask_side: another resolution, as SCR masks are)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    m = mask_side or side
    for k, name in enumerate(names):
        Image.fromarray(np.full((side, side), 10 * k, np.uint8)).save(root / "images" / f"{name}.png")
        mask = np.zeros((m, m), np.uint8)
        mask[m // 4 : 3 * m // 4, m // 4 : m // 2] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_folder_fixed_split_used_as_given(tmp_path: Path) -> None:
    root = tmp_path / "fixed"
    train = [f"odd{i:02d}" for i in range(10)]
    _write_cases(root / "train", train, side=40, mask_side=20)  # masks at half resolution are fine
    _write_cases(root / "test", ["even00", "even01", "even02"], side=48)
    ds = lungs.load_lung_folder(root, image_size=16, val_fraction=0.2, seed=3, cache_dir=tmp_path / "c")
    cases = ds.meta["cases"]
    assert cases["test"] == ["even00", "even01", "even02"] and len(ds.test) == 3
    assert (len(cases["train"]), len(cases["val"])) == (8, 2)  # validation drawn from train/ only
    assert sorted(cases["train"] + cases["val"]) == train
    assert ds.meta["layout"] == "fixed split"
    np.testing.assert_array_equal(ds.test.images[:, 0, 0, 0], [0, 10, 20])  # in name order, as given
    assert set(np.unique(ds.train.labels)) == {0, 1} and ds.train.labels.mean() == pytest.approx(
        0.125, abs=0.02
    )
    other = lungs.load_lung_folder(root, image_size=16, val_fraction=0.2, seed=4, cache_dir=tmp_path / "c")
    assert other.meta["cases"]["val"] != cases["val"] and other.meta["cases"]["test"] == cases["test"]
    # A val/ folder is used as given: nothing is drawn from train/.
    _write_cases(root / "val", ["v0"])
    given = lungs.load_lung_folder(root, image_size=16, cache_dir=tmp_path / "c")
    assert given.meta["cases"]["val"] == ["v0"] and given.meta["cases"]["train"] == train


def test_folder_fixed_split_without_test(tmp_path: Path) -> None:
    _write_cases(tmp_path / "f" / "train", [f"c{i}" for i in range(5)])
    ds = lungs.load_lung_folder(tmp_path / "f", image_size=16, val_fraction=0.2, cache_dir=tmp_path / "c")
    assert ds.test is None and (len(ds.train), len(ds.val)) == (4, 1)


def test_folder_mask_with_other_aspect_ratio_is_an_error(tmp_path: Path) -> None:
    _write_cases(tmp_path / "f", ["a", "b"], side=40)
    Image.fromarray(np.zeros((40, 20), np.uint8)).save(tmp_path / "f" / "masks" / "b.png")
    with pytest.raises(DatasetError, match=r"masks/b\.png is 20x40 but its image b\.png is 40x40"):
        lungs.load_lung_folder(tmp_path / "f", image_size=16, test_fraction=0.0, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").rglob("dataset_info.json"))  # nothing that looks finished


def test_folder_both_layouts_is_an_error(tmp_path: Path) -> None:
    _write_cases(tmp_path / "f", ["a", "b"])
    _write_cases(tmp_path / "f" / "train", ["c", "d"])
    with pytest.raises(DatasetError, match="both train/ and images/, masks/"):
        lungs.load_lung_folder(tmp_path / "f", image_size=16, cache_dir=tmp_path / "c")


# ---------------------------------------------------------------------------------------------- synthetic


def _write_png16(path: Path, values: np.ndarray) -> None:
    """A 16-bit grayscale PNG (IHDR bit depth 16 checked), whatever mode this Pillow opens it in."""
    Image.fromarray(values.astype(np.uint16)).save(path)
    assert path.read_bytes()[24] == 16


@pytest.mark.parametrize("top", [200, 4095, 65535])
def test_folder_16_bit_png_scaled_by_its_bit_depth(tmp_path: Path, top: int) -> None:
    """A 16-bit image is divided by 65535 (its depth, from the file), never by a guess from its maximum:
    a dark 16-bit image (maximum 200 or 4095) stays dark."""
    root = tmp_path / "deep"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    ramp = np.linspace(0, top, 16 * 16).round().reshape(16, 16)
    for i in range(4):
        _write_png16(root / "images" / f"c{i}.png", ramp)
        Image.fromarray(np.eye(16, dtype=np.uint8)).save(root / "masks" / f"c{i}.png")
    gray = lungs_images.open_gray(root / "images" / "c0.png")
    np.testing.assert_allclose(gray, ramp / 65535, rtol=0, atol=1e-6)
    ds = lungs.load_lung_folder(
        root, image_size=16, val_fraction=0.0, test_fraction=0.0, cache_dir=tmp_path / "c"
    )
    expected = np.clip(np.rint(ramp.astype(np.float32) / np.float32(65535) * 255), 0, 255).astype(np.uint8)
    for image in ds.train.images:
        np.testing.assert_array_equal(image[..., 0], expected)
    assert ds.train.images.max() == round(top / 65535 * 255)


def test_open_gray_8_bit_and_undecidable_depths(tmp_path: Path) -> None:
    """8-bit files divide by 255; a float image has no bit depth and is refused with its name."""
    eight = tmp_path / "eight.png"
    Image.fromarray(np.array([[0, 51, 255]], np.uint8)).save(eight)
    np.testing.assert_allclose(lungs_images.open_gray(eight), [[0.0, 0.2, 1.0]], atol=1e-7)
    floats = tmp_path / "floats.tif"
    Image.fromarray(np.array([[0.0, 0.5]], np.float32)).save(floats)
    with pytest.raises(DatasetError, match="floats.tif"):
        lungs_images.open_gray(floats)
    tiff16 = tmp_path / "sixteen.tif"
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(tiff16)
    np.testing.assert_allclose(lungs_images.open_gray(tiff16), [[0.0, 1.0]], atol=1e-7)


def test_synthetic_lungs() -> None:
    a = lungs.synthetic_lungs(6, 2, 3, image_size=64, seed=5)
    b = lungs.synthetic_lungs(6, 2, 3, image_size=64, seed=5)
    c = lungs.synthetic_lungs(6, 2, 3, image_size=64, seed=6)
    assert a.name == "synthetic-lungs" and a.num_classes == 1
    assert (len(a.train), len(a.val), len(a.test)) == (6, 2, 3)
    for name, split in a.splits().items():
        np.testing.assert_array_equal(split.images, b.splits()[name].images)
        np.testing.assert_array_equal(split.labels, b.splits()[name].labels)
        assert split.images.shape[1:] == (64, 64, 1) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.uint8 and set(np.unique(split.labels)) == {0, 1}
        frac = split.labels.reshape(len(split), -1).mean(axis=1)
        assert np.all((frac > 0.1) & (frac < 0.5)), frac
    # Lungs are darker than the thorax around them, yet no single global threshold segments them well.
    img, mask = a.train.images[..., 0], a.train.labels[..., 0].astype(bool)
    dice = []
    for t in range(0, 256, 8):
        pred = img < t
        dice.append(np.mean(2 * (pred & mask).sum((1, 2)) / (pred.sum((1, 2)) + mask.sum((1, 2)))))
    assert 0.2 < max(dice) < 0.85, max(dice)
    assert not np.array_equal(a.train.images, c.train.images)
    assert lungs.synthetic_lungs(2, 0, 1, image_size=32).val is None


def test_a_file_given_as_the_lung_folder_is_named_as_a_file(tmp_path):
    from jaxadl.data.base import DatasetError
    from jaxadl.data.lungs.folder import load_lung_folder
    from jaxadl.data.lungs.jsrt import load_jsrt

    afile = tmp_path / "cases.txt"
    afile.write_text("")
    with pytest.raises(DatasetError, match=f"^lung folder {afile} is a file$"):
        load_lung_folder(afile)
    with pytest.raises(DatasetError, match=rf"^data_dir {afile} is a file \(the JSRT directory\)$"):
        load_jsrt(afile, cache_dir=tmp_path / "cache")

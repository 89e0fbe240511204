"""GTSRB loader on tiny fixtures in all three layouts: shapes, labels, ROI scaling, tracks, cache, errors."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import sys
import tempfile
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

from jaxadl.data import gtsrb
from jaxadl.data.base import DatasetError
from jaxadl.data.gtsrb import builder as gtsrb_builder
from tests import gtsrb_fixtures as fx

SIZE = 16
N_TRAIN = len(fx.CLASSES) * fx.TRACKS * fx.FRAMES
N_TEST = len(fx.TEST_LABELS)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never download; a test that wants the download path installs its own fake urlopen."""

    def forbidden(*args, **kwargs):
        raise AssertionError("network access in a test")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.delenv("JAXADL_GTSRB_DIR", raising=False)
    monkeypatch.delenv("JAXADL_DATA_DIR", raising=False)


def load(src: Path | None, cache: Path, **kw):
    kw.setdefault("image_size", SIZE)
    kw.setdefault("progress", False)
    kw.setdefault("download", False)
    return gtsrb.load_gtsrb(src, cache_dir=cache, **kw)


def centre(images: np.ndarray) -> np.ndarray:
    return images[:, SIZE // 2, SIZE // 2].astype(int)


def check_labels_match_pixels(split) -> None:
    """The ROI colour's green channel is 5·class: labels line up with images."""
    np.testing.assert_allclose(centre(split.images)[:, 1], 5 * split.labels, atol=2)


def all_train(ds) -> tuple[np.ndarray, np.ndarray]:
    parts = [ds.train] + ([ds.val] if ds.val is not None else [])
    return np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts])


@pytest.mark.parametrize("layout", ["zips", "tree_gt_top", "tree_gt_next", "repack"])
def test_layouts_counts_shapes_labels(tmp_path: Path, layout: str) -> None:
    src = tmp_path / "src"
    if layout == "zips":
        fx.write_zips(src)
    elif layout == "repack":
        fx.write_repackaged(src)
    else:
        fx.write_tree(src, fx.official_files(gt_next_to_images=layout == "tree_gt_next"))
    ds = load(src, tmp_path / "cache", val_fraction=0.25)
    assert ds.name == "gtsrb" and ds.num_classes == 43
    assert len(ds.train) + len(ds.val) == N_TRAIN and len(ds.test) == N_TEST
    for split in ds.splits().values():
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (SIZE, SIZE, 3)
        assert split.labels.dtype == np.int32 and split.labels.shape == (len(split),)
        check_labels_match_pixels(split)
    assert sorted(set(all_train(ds)[1].tolist())) == list(fx.CLASSES)
    np.testing.assert_array_equal(ds.test.labels, fx.TEST_LABELS)
    meta = ds.meta
    assert meta["source_layout"] == ("repackaged" if layout == "repack" else "official")
    assert meta["track_source"] == "filename"
    assert meta["counts"] == {"train": len(ds.train), "val": len(ds.val), "test": N_TEST}
    assert meta["config"] == f"s{SIZE}_roi" and meta["prepared_now"] is True
    assert Path(meta["cache_path"]).is_dir() and str(tmp_path / "cache") in meta["cache_path"]
    assert "tensorflow" not in sys.modules


def test_training_only_source_has_no_test(tmp_path: Path) -> None:
    ds = load(fx.write_zips(tmp_path / "src", test=False), tmp_path / "cache")
    assert ds.test is None and len(ds.train) + len(ds.val) == N_TRAIN
    assert "the source has no test set" in ds.meta["notes"]
    nogt = fx.write_zips(tmp_path / "nogt")
    (nogt / gtsrb.TEST_GT_ZIP).unlink()  # test images without labels: no test split, and a note saying why
    ds = load(nogt, tmp_path / "cache")
    assert ds.test is None and any("GT-final_test.csv" in n for n in ds.meta["notes"])
    ds = load(fx.write_repackaged(tmp_path / "rp", test=False), tmp_path / "cache")
    assert ds.test is None


def test_roi_is_scaled_to_actual_image_size(tmp_path: Path) -> None:
    """Files are 32×32, 48×24, 64×48 while the CSV says 64×48: the crop must be all ROI colour."""
    src = fx.write_tree(tmp_path / "src", fx.official_files())
    ds = load(src, tmp_path / "cache", val_fraction=0.0)
    imgs, labels = ds.train.images.astype(int), ds.train.labels
    inner = imgs[:, 2:-2, 2:-2]
    assert (inner[..., 0] >= 245).all() and (inner[..., 2] <= 5).all()
    np.testing.assert_allclose(inner[..., 1], 5 * labels[:, None, None] * np.ones_like(inner[..., 1]), atol=2)
    assert (imgs[..., 0] > imgs[..., 2]).mean() > 0.95  # even the borders are mostly ROI

    whole = load(src, tmp_path / "cache", val_fraction=0.0, crop="none")
    assert whole.meta["config"] == f"s{SIZE}_none"
    corners = whole.train.images[:, [0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
    assert (corners[..., 2] >= 245).all() and (corners[..., 0] <= 5).all()  # margin kept
    check_labels_match_pixels(whole.train)


def test_other_image_size(tmp_path: Path) -> None:
    ds = load(fx.write_zips(tmp_path / "src"), tmp_path / "cache", image_size=9)
    assert ds.train.images.shape[1:] == (9, 9, 3) and ds.meta["config"] == "s9_roi"


def tracks_of(ds_split) -> set[tuple[int, int]]:
    """(class, track) pairs read from pixels: margin green = 40 + 40·track (crop='none')."""
    g = ds_split.images[:, 0, 0, 1].astype(int)
    return {(int(c), int(round((v - 40) / 40))) for c, v in zip(ds_split.labels, g, strict=True)}


def test_track_level_split(tmp_path: Path) -> None:
    src = fx.write_zips(tmp_path / "src")
    cache = tmp_path / "cache"
    a = load(src, cache, crop="none", val_fraction=0.25, seed=0)
    train_t, val_t = tracks_of(a.train), tracks_of(a.val)
    assert not train_t & val_t
    assert len(train_t | val_t) == len(fx.CLASSES) * fx.TRACKS
    # one of four tracks per class goes to val, every class keeps tracks in train
    assert sorted(c for c, _ in val_t) == sorted(fx.CLASSES)
    assert len(a.val) == len(fx.CLASSES) * fx.FRAMES
    assert a.meta["tracks"] == {"train": 9, "val": 3}

    b = load(src, cache, crop="none", val_fraction=0.25, seed=0)
    np.testing.assert_array_equal(a.val.images, b.val.images)
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    others = [tracks_of(load(src, cache, crop="none", val_fraction=0.25, seed=s).val) for s in (1, 2, 3)]
    assert any(o != val_t for o in others)

    none = load(src, cache, val_fraction=0.0)
    assert none.val is None and len(none.train) == N_TRAIN and "val" not in none.meta["counts"]


def test_track_split_function() -> None:
    labels = np.repeat(np.arange(3), 100)
    tracks = np.tile(np.repeat(np.arange(10), 10), 3)
    m = gtsrb.track_split(labels, tracks, 0.2, seed=7)
    np.testing.assert_array_equal(m, gtsrb.track_split(labels, tracks, 0.2, seed=7))
    assert m.sum() == 3 * 2 * 10
    for c in range(3):
        val_tracks = set(tracks[(labels == c) & m])
        assert len(val_tracks) == 2 and not val_tracks & set(tracks[(labels == c) & ~m])
    single = gtsrb.track_split(np.zeros(5, int), np.zeros(5, int), 0.5, seed=0)
    assert not single.any()  # a class with one track keeps it in train


def test_repackaged_without_track_names_groups_rows(tmp_path: Path) -> None:
    ds = load(fx.write_repackaged(tmp_path / "src", named=False), tmp_path / "cache", val_fraction=0.0)
    assert ds.meta["track_source"] == "rows30"
    assert any("30 consecutive rows" in n for n in ds.meta["notes"])
    assert len(ds.train) == N_TRAIN


def test_second_call_uses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = fx.write_zips(tmp_path / "src")
    cache = tmp_path / "cache"
    first = load(src, cache)
    assert first.meta["prepared_now"] and first.meta["prepare_seconds"] is not None

    def no_decode(*args, **kwargs):
        raise AssertionError("source re-read")

    monkeypatch.setattr(gtsrb_builder, "decode_image", no_decode)
    second = load(src, cache)
    assert second.meta["prepared_now"] is False
    assert second.meta["prepare_seconds"] == first.meta["prepare_seconds"]
    assert second.meta["cache_path"] == first.meta["cache_path"]
    for name, split in first.splits().items():
        np.testing.assert_array_equal(split.images, second.splits()[name].images)
        np.testing.assert_array_equal(split.labels, second.splits()[name].labels)

    # The second call read the npz copy; without it (or with a broken one) the array_record files serve.
    assert (first.meta["read_from"], second.meta["read_from"]) == ("array_record", "npz")
    npz = Path(first.meta["cache_path"]) / gtsrb.NPZ_NAME
    for damage, warns in ((lambda: npz.unlink(), False), (lambda: npz.write_bytes(b"not a zip"), True)):
        damage()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = load(src, cache)
        said = [str(w.message) for w in caught if "rebuilding" in str(w.message)]
        assert bool(said) == warns and all(str(npz) in m for m in said)
        assert again.meta["read_from"] == "array_record" and not again.meta["prepared_now"]
        np.testing.assert_array_equal(again.train.images, first.train.images)
        np.testing.assert_array_equal(again.test.labels, first.test.labels)
        assert load(src, cache).meta["read_from"] == "npz"
    assert not [p for p in cache.rglob("*.tmp")]

    # Another source dir (same content) gets its own cache entry rather than reusing this one.
    other = tmp_path / "other"
    shutil.copytree(src, other)
    with pytest.raises(AssertionError, match="source re-read"):
        load(other, cache)


def test_preparation_leaves_no_temp_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TFDS made an empty tmp*tfds folder for every builder not prepared yet; none may be left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    ds = load(fx.write_zips(tmp_path / "src"), tmp_path / "cache")
    assert ds.meta["prepared_now"] and len(ds.train) > 0
    assert list(tmp.iterdir()) == []


def test_cache_dir_from_env_and_source_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = fx.write_zips(tmp_path / "src")
    monkeypatch.setenv("JAXADL_GTSRB_DIR", str(src))
    monkeypatch.setenv("JAXADL_DATA_DIR", str(tmp_path / "envcache"))
    ds = gtsrb.load_gtsrb(image_size=SIZE, progress=False, download=False)
    assert ds.meta["source"] == str(src)
    assert ds.meta["cache_path"].startswith(str(tmp_path / "envcache"))


def test_failed_preparation_leaves_no_finished_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = fx.write_zips(tmp_path / "src")
    cache = tmp_path / "cache"
    real = gtsrb_builder.decode_image
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # e.g. the user hits Ctrl-C mid-way
        return real(*args, **kwargs)

    monkeypatch.setattr(gtsrb_builder, "decode_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        load(src, cache)
    assert not list(cache.rglob("dataset_info.json"))
    assert not [p for p in cache.rglob("*") if "incomplete" in p.name]
    monkeypatch.setattr(gtsrb_builder, "decode_image", real)
    ds = load(src, cache)
    assert ds.meta["prepared_now"] and len(ds.train) + len(ds.val) == N_TRAIN


def test_progress_lines_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load(fx.write_zips(tmp_path / "src"), tmp_path / "cache", progress=True)
    out = capsys.readouterr()
    assert out.out == ""
    assert f"preparing {N_TRAIN + N_TEST} images" in out.err and "done in" in out.err


# ---- errors ------------------------------------------------------------------------------------------


def tree(tmp_path: Path) -> tuple[Path, Path]:
    return fx.write_tree(tmp_path / "src", fx.official_files()), tmp_path / "cache"


def test_error_corrupt_image(tmp_path: Path) -> None:
    src, cache = tree(tmp_path)
    bad = src / "GTSRB/Final_Training/Images/00005/00001_00002.ppm"
    bad.write_bytes(b"P6\n32 32\n255\n" + b"\x00" * 10)
    with pytest.raises(DatasetError, match="00005/00001_00002.ppm.*corrupt"):
        load(src, cache)
    assert not list(cache.rglob("dataset_info.json"))


def test_error_csv_row_without_file(tmp_path: Path) -> None:
    src, cache = tree(tmp_path)
    (src / "GTSRB/Final_Training/Images/00042/00003_00001.ppm").unlink()
    with pytest.raises(
        DatasetError, match=r"GT-00042\.csv line \d+: image file '00003_00001.ppm' is missing"
    ):
        load(src, cache)


def test_error_class_out_of_range(tmp_path: Path) -> None:
    src, cache = tree(tmp_path)
    csv = src / "GTSRB/Final_Training/Images/00042/GT-00042.csv"
    csv.write_text(csv.read_text().replace(";42\n", ";43\n", 1))
    with pytest.raises(DatasetError, match=r"GT-00042\.csv line 2: ClassId 43 outside 0\.\.42"):
        load(src, cache)


def test_error_csv_missing_columns(tmp_path: Path) -> None:
    src, cache = tree(tmp_path)
    csv = src / "GTSRB/Final_Training/Images/00000/GT-00000.csv"
    csv.write_text(csv.read_text().replace(";Roi.X2", ";Foo"))
    with pytest.raises(DatasetError, match=r"GT-00000\.csv: CSV is missing column\(s\) Roi\.X2"):
        load(src, cache)
    rp = fx.write_repackaged(tmp_path / "rp")
    (rp / "Train.csv").write_text((rp / "Train.csv").read_text().replace(",Path", ",File"))
    with pytest.raises(DatasetError, match=r"Train\.csv: CSV is missing column\(s\) Path"):
        load(rp, cache)


def test_error_unrecognised_dir(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"no GTSRB training data found.*JAXADL_GTSRB_DIR") as err:
        load(src, tmp_path / "cache")
    assert str(err.value).startswith(f"data_dir {src}: no GTSRB training data found")
    assert err.value.naming("--data-dir").startswith(f"--data-dir {src}: no GTSRB")


def test_error_no_data_and_no_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load(None, tmp_path / "cache", download=False)
    msg = str(err.value)
    for needed in (
        *gtsrb.ARCHIVES,
        "no data_dir given",
        "pass it with data_dir or",
        "JAXADL_GTSRB_DIR",
        "--dataset=synthetic",
        "download=False",
    ):
        assert needed in msg
    # a command names the same argument by its flag, also after the error crossed a process (pickle)
    for error in (err.value, pickle.loads(pickle.dumps(err.value))):
        assert error.arg == "data_dir" and "data_dir" not in error.naming("--data-dir")
        assert "no --data-dir given" in error.naming(
            "--data-dir"
        ) and "pass it with --data-dir or" in error.naming("--data-dir")


@pytest.mark.parametrize("how,says", [("empty", "holds no GTSRB"), ("missing", "does not exist")])
def test_a_named_folder_without_data_is_an_error_not_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, says: str
) -> None:
    def no_network(url, timeout=None):
        raise AssertionError(f"downloaded {url} although the user named a folder")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    src = tmp_path / "src"
    if how == "empty":
        src.mkdir()
    with pytest.raises(DatasetError) as err:
        load(src, tmp_path / "cache", download=True)
    msg = str(err.value)
    assert str(src) in msg and says in msg and "--dataset=synthetic" in msg
    assert not (tmp_path / "cache" / "downloads").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    src, cache = tree(tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        load(src, cache, image_size=7)
    with pytest.raises(ValueError, match="crop"):
        load(src, cache, crop="centre")
    for vf in (-0.1, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            load(src, cache, val_fraction=vf)


# ---- download path (served from memory, never the network) -----------------------------------------------


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_when_no_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archives = fx.official_zip_bytes()
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return FakeResponse(archives[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    cache = tmp_path / "cache"
    ds = load(None, cache, download=True)
    assert urls == [gtsrb.DOWNLOAD_URL + name for name in gtsrb.ARCHIVES]
    assert len(ds.test) == N_TEST and ds.meta["source"] == str(cache / "downloads" / "gtsrb")
    assert not list(cache.rglob("*.part"))
    # Archives present: no second download, and download=False works from them.
    urls.clear()
    load(None, cache, download=False)
    assert urls == []


def test_failed_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url, timeout=None):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "cache"
    with pytest.raises(
        DatasetError, match=r"could not download .*GTSRB_Final_Training_Images.zip.*synthetic"
    ):
        load(None, cache, download=True)
    assert not list(cache.rglob("*.zip")) and not list(cache.rglob("*.part"))


def test_an_edited_source_file_gets_a_new_cache(tmp_path: Path) -> None:
    """The cache key follows every source file's size and modification time, not only the folder's total."""
    src, cache = fx.write_zips(tmp_path / "src"), tmp_path / "cache"
    first = load(src, cache)
    archive = sorted(src.glob("*.zip"))[0]
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an edit of the same size
    again = load(src, cache)
    assert again.meta["prepared_now"] and again.meta["cache_path"] != first.meta["cache_path"]
    assert load(src, cache).meta["prepared_now"] is False  # unchanged since: the new entry serves

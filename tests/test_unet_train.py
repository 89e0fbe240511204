"""The U-Net experiment's default recipe learns on small synthetic lungs; a folder dataset runs end to end."""

import json

import numpy as np
import pytest
from PIL import Image

from experiments import unet
from jaxadl.data.lungs import synthetic_lungs
from jaxadl.train import fit
from jaxadl.trainer import Trainer


@pytest.mark.slow
def test_default_recipe_raises_validation_f1():
    size = 32
    data = synthetic_lungs(32, 8, 0, image_size=size, seed=1)
    cfg = unet.UNetConfig(dataset="synthetic", image_size=size, depth=2, width=8, epochs=8)
    (variant,) = unet.build_variants(cfg, data)
    assert variant.train.augment is not None and variant.train.select == "best"
    trainer = Trainer(variant.model, variant.task, variant.train, len(data.train))
    before = trainer.evaluate(trainer.init(data.train.images.shape[1:]), data.val)["f1"].mean()
    result = fit(variant.model, variant.task, data.train, variant.train, data.val, trainer=trainer)
    after = trainer.evaluate(result.state, data.val)["f1"]
    best = max(r["val_f1"] for r in result.history)
    assert after.mean() == np.float32(best)  # the selected epoch is the best on validation
    assert before < 0.5
    assert after.mean() > 0.75 and after.mean() > before + 0.4  # measured: 0.11 -> 0.88
    assert after.min() > 0.6  # measured: 0.85


def _write_folder(root, n=12, size=64):
    """PNG radiographs of different sizes with {0,255} masks, from the synthetic generator."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    data = synthetic_lungs(n, 0, 0, image_size=size, seed=2)
    for i in range(n):
        side = size + 8 * (i % 3)
        img = Image.fromarray(data.train.images[i, ..., 0]).resize((side, side), Image.Resampling.BILINEAR)
        img.save(root / "images" / f"case{i:02d}.png")
        mask = Image.fromarray(data.train.labels[i, ..., 0] * 255).resize(
            (side, side), Image.Resampling.NEAREST
        )
        mask.save(root / "masks" / f"case{i:02d}.png")


def test_folder_dataset_through_the_cli(tmp_path, capsys):
    _write_folder(tmp_path / "lungs")
    out = tmp_path / "run"
    code = unet.main(
        [
            f"--dataset=folder:{tmp_path / 'lungs'}",
            f"--cache-dir={tmp_path / 'cache'}",
            "--image-size=16",
            "--depth=1",
            "--width=4",
            "--epochs=2",
            "--batch-size=2",
            "--no-augment",
            "--test-fraction=0.5",
            "--val-fraction=0.2",
            f"--out={out}",
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "lung-folder" and results["eval_split"] == "test"
    cases = results["dataset_meta"]["cases"]
    assert (len(cases["train"]), len(cases["val"]), len(cases["test"])) == (5, 1, 6)
    (trial,) = results["trials"]
    assert trial["variant"] == "baseline" and trial["eval"]["f1"]["n"] == 6
    assert "| baseline | 1 | 6 |" in (out / "results.md").read_text()
    assert (out / "plots" / "baseline_trial1_example.png").exists()
    assert "epoch   2/2" in stdout


@pytest.mark.slow
def test_default_cli_learns_on_small_synthetic_lungs(tmp_path, capsys):
    """The default recipe through the command line, shortened: test F1 far above all-foreground's."""
    out = tmp_path / "run"
    argv = ["--dataset=synthetic", "--image-size=32", "--depth=2", "--width=8", "--epochs=8",
            "--synthetic-train=32", "--synthetic-val=8", "--synthetic-test=16", f"--out={out}"]  # fmt: skip
    assert unet.main(argv) == 0
    trial = json.loads((out / "results.json").read_text())["trials"][0]
    f1 = trial["eval"]["f1"]
    assert f1["n"] == 16 and f1["mean"] > 0.75 and f1["min"] > 0.5  # all-foreground scores about 0.45
    assert "no better than chance" not in capsys.readouterr().out

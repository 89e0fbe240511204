"""The time-to-accuracy benchmark: PyTorch's side computes what jaxadl computes, and the JSON it writes."""

import json

import jax
import numpy as np
import pytest

from benchmarks import time_to_accuracy as tta
from jaxadl import AugmentConfig, Trainer

torch = pytest.importorskip("torch")

TINY = ["--dataset=synthetic", "--synthetic-train=300", "--wait-idle=0"]


@pytest.fixture(scope="module")
def setup():
    args = tta.parse_args([*TINY, "--epochs=2"])
    data, variant = tta.recipe(args)
    trainer = Trainer(variant.model, variant.task, variant.train, len(data.train))
    state = trainer.init(data.train.images.shape[1:])
    initial = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    return data, variant, trainer, state, tta.TorchRecipe(variant, data, initial)


def test_the_recipe_is_the_cli_strong_recipe(setup):
    _, variant, _, _, side = setup
    cfg = variant.train
    assert (cfg.epochs, cfg.batch_size, cfg.tta, cfg.augment) == (2, 128, True, AugmentConfig())
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.schedule) == ("adam", 2e-3, "onecycle")
    assert variant.task.label_smoothing == 0.1
    groups = side.opt.param_groups
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])
    # the per-step learning rates are jaxadl's schedule: warm-up from lr / 25 to the peak, then down
    assert len(side.lrs) == side.steps_per_epoch * 2
    assert side.lrs[0] == pytest.approx(2e-3 / 25, rel=1e-5) and side.lrs.max() == pytest.approx(
        2e-3, rel=1e-5
    )


def test_torch_evaluates_as_jaxadl_from_the_same_weights(setup):
    data, _, trainer, state, side = setup
    jax_logits = trainer.predict(state, data.val.images)  # normalised inputs, TTA over 5 shifts
    with torch.no_grad():
        side.net.eval()
        torch_logits = side.logits(side.inputs(side.val_x)).numpy()
    np.testing.assert_allclose(torch_logits, jax_logits, rtol=1e-4, atol=1e-4)
    assert side.evaluate() == pytest.approx(float(trainer.evaluate(state, data.val)["accuracy"].mean()))


def test_torch_loss_is_jaxadl_loss_with_smoothing(setup):
    data, variant, trainer, state, side = setup
    x = data.train.images[:16]
    y = data.train.labels[:16]
    logits = trainer.predict(state, x)
    want = np.asarray(variant.task.loss(logits, y)).mean()
    got = torch.nn.functional.cross_entropy(
        torch.from_numpy(np.asarray(logits)), torch.from_numpy(y.astype(np.int64)), label_smoothing=0.1
    )
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_torch_augmentation_ranges(setup):
    *_, side = setup
    x = torch.rand(8, 3, 28, 28)
    off = AugmentConfig(rotate_deg=0, translate_px=0, scale=0, brightness=0, contrast=0)
    assert torch.equal(side.augment(x, off), x.clamp(0, 1))
    # a pure shift of up to 2 px leaves the image's middle a shifted copy: values stay within the image's
    shifted = side.augment(x, AugmentConfig(rotate_deg=0, translate_px=2, scale=0, brightness=0, contrast=0))
    assert not torch.equal(shifted, x) and shifted.min() >= x.min() and shifted.max() <= x.max()
    bright = side.augment(
        torch.full((64, 3, 4, 4), 0.5),
        AugmentConfig(rotate_deg=0, translate_px=0, scale=0, brightness=0.2, contrast=0),
    )
    shift = bright[:, 0, 0, 0] - 0.5  # one offset per image, within +-0.2, both signs drawn
    assert torch.allclose(bright, bright[:, :1, :1, :1].expand_as(bright))
    assert shift.abs().max() <= 0.2 + 1e-6 and shift.min() < 0 < shift.max()


def test_end_to_end_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert tta.main([*TINY, "--epochs=2", "--target=0.01", f"--json={path}"]) == 0
    out = json.loads(path.read_text())
    assert out["target"] == 0.01 and out["max_epochs"] == 2 and out["val_images"] == 43
    for name in ("jaxadl", "torch"):
        s = out["sides"][name]
        assert s["reached"] and s["epochs_to_target"] == 1 and len(s["epochs"]) == 1  # stops at the target
        assert 0 < s["seconds_to_target"] <= s["seconds_to_target_with_compile"]
        assert s["images_per_s"] > 0 and s["epochs"][0]["val_accuracy"] >= 0.01
    assert out["sides"]["jaxadl"]["compile_seconds"] > 0 and out["sides"]["torch"]["compile_seconds"] == 0
    assert out["ratio_seconds_to_target"] > 0 and out["ratio_time_per_image"] > 0
    assert out["valid_for_comparison"] == (out["busy"] is None)
    assert "time to 1 % validation accuracy" in capsys.readouterr().out


def test_unreached_target_runs_every_epoch(tmp_path):
    path = tmp_path / "out.json"
    assert tta.main([*TINY, "--epochs=2", "--target=1.0", "--compare=none", f"--json={path}"]) == 0
    s = json.loads(path.read_text())["sides"]["jaxadl"]
    assert not s["reached"] and len(s["epochs"]) == 2 and "seconds_to_target" not in s
    assert [e["epoch"] for e in s["epochs"]] == [1, 2] and s["epochs"][1]["elapsed"] > s["epochs"][0][
        "elapsed"
    ]


def test_bad_arguments(capsys):
    for argv in (
        ["--target=0"],
        ["--target=1.5", "--dataset=synthetic"],
        ["--epochs=0", "--dataset=synthetic"],
    ):
        with pytest.raises(SystemExit) as e:
            tta.parse_args(argv)
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        tta.parse_args([])  # gtsrb without --data-dir
    assert "--data-dir" in capsys.readouterr().err

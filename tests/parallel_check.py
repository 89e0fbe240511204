"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=4 (tests/test_parallel.py does): compares 1 and 4
devices for the CNN with and without batch norm and the U-Net, and resumes a 4-device run on 1 device."""

import dataclasses
import json
import sys
import tempfile

import jax

from jaxadl import Classification, OptimConfig, Segmentation, SignCNN, TrainConfig, Trainer, UNet, fit
from jaxadl.data.lungs import synthetic_lungs
from jaxadl.parallel import make_mesh
from tests.helpers import colour_squares

assert jax.device_count() == 4, jax.devices()
out = {}
train, val = colour_squares(128, seed=0), colour_squares(64, seed=1)
cls = Classification(num_classes=10)
cfg = TrainConfig(epochs=2, batch_size=32, eval_batch_size=30, optim=OptimConfig("adam", 1e-3))
for bn in (False, True):
    model = SignCNN(num_classes=10, batch_norm=bn)
    c = dataclasses.replace(cfg, ema=0.9, tta=True) if bn else cfg  # the weight average and TTA sharded too
    runs = [
        fit(model, cls, train, c, val, trainer=Trainer(model, cls, c, len(train), mesh=make_mesh(n)))
        for n in (1, 4)
    ]
    out[f"cnn_bn{bn}"] = [[r.step_losses.tolist(), [h["val_loss"] for h in r.history]] for r in runs]
    sharding = runs[1].state.params["fc"]["kernel"].sharding
    out[f"cnn_bn{bn}_sharding"] = [sharding.is_fully_replicated, len(sharding.device_set)]

lungs = synthetic_lungs(16, 4, 0, image_size=32, seed=0)
seg = Segmentation()
ucfg = TrainConfig(epochs=2, batch_size=4, eval_batch_size=4, optim=OptimConfig("adam", 1e-3))
unet = UNet(depth=2, base_features=4)
runs = [
    fit(unet, seg, lungs.train, ucfg, lungs.val, trainer=Trainer(unet, seg, ucfg, 16, mesh=make_mesh(n)))
    for n in (1, 4)
]
out["unet"] = [[r.step_losses.tolist(), [h["val_f1"] for h in r.history]] for r in runs]

# a 4-device run checkpointed after epoch 1 resumes on 1 device with the same numbers
model = SignCNN(num_classes=10, batch_norm=True)
whole = fit(model, cls, train, cfg, val, trainer=Trainer(model, cls, cfg, len(train), mesh=make_mesh(1)))
with tempfile.TemporaryDirectory() as d:
    one_epoch = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    fit(
        model,
        cls,
        train,
        one_epoch,
        val,
        trainer=Trainer(model, cls, cfg, len(train), mesh=make_mesh(4)),
        checkpoint_dir=d,
    )
    resumed = fit(
        model,
        cls,
        train,
        cfg,
        val,
        trainer=Trainer(model, cls, cfg, len(train), mesh=make_mesh(1)),
        checkpoint_dir=d,
        resume=True,
    )
out["resume"] = [whole.step_losses.tolist(), resumed.step_losses.tolist()]
try:
    Trainer(model, cls, TrainConfig(batch_size=30), 128, mesh=make_mesh(4))
except ValueError as e:
    out["indivisible"] = str(e)
# the CLI on 2 of the 4 devices: the run records the mesh it trained on
with tempfile.TemporaryDirectory() as d:
    import contextlib
    import io

    from experiments import cnn

    argv = [
        "--dataset=synthetic",
        "--synthetic-train=258",
        "--batch-size=42",
        "--epochs=1",
        "--recipe=report",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cnn.main([*argv, "--devices=2", f"--out={d}/two"])
    out["cli_devices"] = [code, json.load(open(f"{d}/two/results.json"))["devices"]]
json.dump(out, sys.stdout)

"""Wall time until the CNN's validation accuracy first reaches a target, jaxadl beside PyTorch.

    python -m benchmarks.time_to_accuracy --data-dir=GTSRB_DIR              # 97 %, 5 epochs
    python -m benchmarks.time_to_accuracy --data-dir=GTSRB_DIR --target=0.98 --epochs=10
    python -m benchmarks.time_to_accuracy --dataset=synthetic --target=0.5 --epochs=3  # offline
    python -m benchmarks.time_to_accuracy --dataset=npz --data-dir=gtsrb28.npz --target=0.98 --batch-size=512

Both sides train the CNN's strong recipe, as ``python -m experiments.cnn`` builds it for these flags
(per-channel normalisation, augmentation, label smoothing, AdamW one-cycle over ``--epochs`` with decay
on kernels, batch 128, test-time augmentation in evaluation), on the same training images, from the same
initial weights, and are evaluated after every epoch on the same validation tracks. jaxadl runs its
``Trainer`` (data on the device once, augmentation inside the compiled step); PyTorch runs a plain eager
loop as a PyTorch user writes it: the uint8 training set in one tensor, a random permutation per epoch,
batch augmentation with ``affine_grid``/``grid_sample`` on the same device (same ranges, its own random
numbers), ``AdamW`` with the same per-step learning rates, ``cross_entropy(label_smoothing=...)``.

Reported per side: the epoch and wall time at which validation accuracy first reached ``--target``
(training + evaluation, compile excluded, and with set-up and compile included), images per second of
whole training epochs, and the accuracy per epoch. Training stops at the target unless ``--all-epochs``.
Machine load is recorded before and after (see ``benchmarks.common``): a figure from a busy machine is
marked not valid for a comparison.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from benchmarks.common import check_outputs, check_torch, idle_machine, num_cores, stamped
from experiments.cli import opt, parse
from jaxadl import AugmentConfig, Classification, Trainer
from jaxadl.optim import learning_rate_schedule
from jaxadl.tta import SHIFTS


@dataclasses.dataclass(frozen=True)
class TimeToAccuracyConfig:
    """What to race; one flag per field (experiments.cli)."""

    dataset: str = opt(
        "gtsrb",
        "gtsrb, synthetic, or npz (GTSRB saved by jaxadl.data.arrays.save_npz, e.g. for a machine without "
        "tensorflow-datasets)",
        choices=("gtsrb", "synthetic", "npz"),
    )
    data_dir: str | None = opt(
        None, "GTSRB folder (as for experiments.cnn); with --dataset=npz the .npz file", shown="none"
    )
    target: float = opt(0.97, "validation accuracy to reach")
    epochs: int = opt(5, "length of the schedule and most epochs")
    batch_norm: bool = opt(False, "BatchNorm after each conv")
    batch_size: int | None = opt(None, "training batch", shown="the recipe's, 128")
    seed: int = opt(0, "seed of the initial weights and the batch order")
    synthetic_train: int = opt(8600, "synthetic: training images")
    compare: str = opt("torch", "torch: PyTorch's loop beside jaxadl's", choices=("torch", "none"))
    all_epochs: bool = opt(False, "train every epoch, not only until the target")
    wait_idle: float = opt(60.0, "seconds to wait for an idle machine")
    json: str | None = opt(None, "write the figures to this file", shown="none")

    def __post_init__(self) -> None:
        if not 0 < self.target <= 1:
            raise ValueError(f"target must be in (0, 1], got {self.target}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.dataset != "synthetic" and not self.data_dir:
            raise ValueError(
                f"--dataset={self.dataset} needs --data-dir (the GTSRB folder, or the .npz file)"
            )
        check_outputs(self)
        check_torch(self.compare)


def parse_args(argv: Sequence[str] | None) -> TimeToAccuracyConfig:
    """The command line as a config; bad values exit with code 2 and name the flag."""
    prog = "python -m benchmarks.time_to_accuracy"
    return parse(TimeToAccuracyConfig, argv, __doc__.split("\n\n")[0], prog=prog)


def recipe(args: TimeToAccuracyConfig):
    """The data and the variant `python -m experiments.cnn` trains for these flags."""
    from experiments.cnn import CNNConfig, build_variants, load_data

    cfg = CNNConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=False,
        epochs=args.epochs,
        batch_norm=args.batch_norm,
        batch_size=args.batch_size,
        seed=args.seed,
        synthetic_train=args.synthetic_train,
    )
    data = load_data(cfg)
    if data.val is None or not len(data.val):
        raise SystemExit("the dataset has no validation split to measure accuracy on")
    return data, build_variants(cfg, data)[0]


class Tracker:
    """Per-epoch records of one side and when the target was first reached."""

    def __init__(self, name: str, target: float, setup_seconds: float, compile_seconds: float):
        self.name, self.target = name, target
        self.setup_seconds, self.compile_seconds = setup_seconds, compile_seconds
        self.epochs: list[dict[str, float]] = []
        self.elapsed = 0.0  # training + evaluation, compile excluded

    def add(self, train_s: float, eval_s: float, images: int, accuracy: float) -> bool:
        self.elapsed += train_s + eval_s
        rec = {
            "epoch": len(self.epochs) + 1,
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "images_per_s": images / train_s,
            "val_accuracy": accuracy,
            "elapsed": self.elapsed,
        }
        self.epochs.append(rec)
        print(
            f"  {self.name:6s} epoch {rec['epoch']:2d}: val {100 * accuracy:6.2f} %  train {train_s:6.1f} s "
            f"({rec['images_per_s']:7.0f} img/s)  eval {eval_s:5.1f} s  elapsed {self.elapsed:7.1f} s",
            flush=True,
        )
        return accuracy >= self.target

    def summary(self) -> dict[str, Any]:
        hit = next((r for r in self.epochs if r["val_accuracy"] >= self.target), None)
        out: dict[str, Any] = {
            "setup_seconds": self.setup_seconds,
            "compile_seconds": self.compile_seconds,
            "images_per_s": float(np.median([r["images_per_s"] for r in self.epochs])),
            "best_val_accuracy": max(r["val_accuracy"] for r in self.epochs),
            "epochs": self.epochs,
            "reached": hit is not None,
        }
        if hit is not None:
            out["epochs_to_target"] = hit["epoch"]
            out["seconds_to_target"] = hit["elapsed"]
            out["seconds_to_target_with_compile"] = hit["elapsed"] + self.setup_seconds + self.compile_seconds
        return out


# -- jaxadl ----------------------------------------------------------------------------------------------------
def run_jaxadl(variant, data, args: TimeToAccuracyConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train with jaxadl's Trainer until the target; returns the summary and the initial variables."""
    t0 = time.perf_counter()
    trainer = Trainer(variant.model, variant.task, variant.train, len(data.train))
    state = trainer.init(data.train.images.shape[1:])
    initial = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    x, y, _ = trainer.put_train(data.train)
    val = trainer.put_eval(data.val)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.compile(state, x, y)
    trainer.evaluator.evaluate_padded = trainer.evaluator.evaluate_padded.lower(
        *state.eval_variables(), val[0], val[1]
    ).compile()
    track = Tracker("jaxadl", args.target, setup, time.perf_counter() - t0)
    images = trainer.steps_per_epoch * variant.train.batch_size
    for _ in range(variant.train.epochs):
        t = time.perf_counter()
        state, metrics = trainer.train_epoch(state, x, y)
        jax.block_until_ready((state, metrics))
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        accuracy = float(trainer.evaluate(state, val)["accuracy"].mean())
        if track.add(train_s, time.perf_counter() - t, images, accuracy) and not args.all_epochs:
            break
    return track.summary(), initial


# -- PyTorch ---------------------------------------------------------------------------------------------------
class TorchRecipe:
    """The same network, initial weights, inputs, loss, optimizer, schedule and evaluation in plain PyTorch."""

    def __init__(self, variant, data, initial: dict[str, Any], seed: int = 0):
        import torch

        from benchmarks.torch_models import TorchSignCNN
        from jaxadl.porting import to_torch_state_dict

        self.torch, self.variant = torch, variant
        torch.set_num_threads(num_cores())
        torch.manual_seed(seed)
        self.device = torch.device(
            "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        )
        fc_in = int(initial["params"]["fc"]["kernel"].shape[0])
        net = TorchSignCNN(variant.model.batch_norm, variant.model.num_classes, in_features=fc_in)
        sd = to_torch_state_dict(initial, variant.model)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
        self.net = net.to(self.device)
        nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(self.device)
        self.train_x, self.val_x = nchw(data.train.images), nchw(data.val.images)
        self.train_y = torch.from_numpy(data.train.labels.astype(np.int64)).to(self.device)
        self.val_y = torch.from_numpy(data.val.labels.astype(np.int64)).to(self.device)
        task: Classification = variant.task
        self.mean = torch.tensor(task.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(task.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        cfg = variant.train
        self.batch = cfg.batch_size
        self.steps_per_epoch = len(data.train) // cfg.batch_size
        schedule = learning_rate_schedule(cfg.optim, self.steps_per_epoch * cfg.epochs)
        self.lrs = np.asarray(jax.vmap(schedule)(np.arange(self.steps_per_epoch * cfg.epochs)), np.float64)
        if cfg.optim.name != "adam":
            raise SystemExit(
                "the PyTorch side mirrors the Adam recipe only (experiments.cnn --optimizer=adam)"
            )
        decay = [p for p in self.net.parameters() if p.ndim > 1]  # kernels, as jaxadl's decay mask
        rest = [p for p in self.net.parameters() if p.ndim <= 1]
        groups = [
            {"params": decay, "weight_decay": cfg.optim.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(groups, lr=float(self.lrs[0]), eps=1e-8)
        self.step = 0
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def inputs(self, images: Any) -> Any:
        """uint8 NCHW -> normalised float, as jaxadl's Task.inputs."""
        return self.normalize(images.float() / 255.0)

    def normalize(self, x: Any) -> Any:
        if self.variant.task.equalize:  # as jaxadl.tasks.equalize: each image's pixels -> their level's CDF
            flat = x.reshape(x.shape[0], -1)
            levels = (flat * 256).long().clamp(0, 255)
            counts = self.torch.zeros(x.shape[0], 256, device=x.device).scatter_add_(
                1, levels, self.torch.ones_like(flat)
            )
            x = (counts.cumsum(1) / flat.shape[1]).gather(1, levels).reshape(x.shape)
        if self.variant.task.image_norm:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            return (x - mean) / (x.var(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1e-4).sqrt()
        return (x - self.mean) / self.std

    def augment(self, x: Any, cfg: AugmentConfig) -> Any:
        """Random rotation, zoom and shift (bilinear, edge-padded), contrast and brightness, as jaxadl.augment."""
        torch, F = self.torch, self.torch.nn.functional
        b, _, h, w = x.shape
        u = lambda *shape: (torch.rand(*shape, generator=self.generator) * 2 - 1).to(self.device)
        if cfg.geometric:
            angle, zoom = u(b) * math.radians(cfg.rotate_deg), 1 + u(b) * cfg.scale
            shift = u(b, 2) * cfg.translate_px
            c, s = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack(
                [torch.stack([c, -s, -2 * shift[:, 0] / w], 1), torch.stack([s, c, -2 * shift[:, 1] / h], 1)],
                1,
            )
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if cfg.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (1 + u(b, 1, 1, 1) * cfg.contrast) + mean
        if cfg.brightness:
            x = x + u(b, 1, 1, 1) * cfg.brightness
        return x.clamp(0.0, 1.0)

    def train_epoch(self) -> None:
        torch, F = self.torch, self.torch.nn.functional
        self.net.train()
        order = torch.randperm(len(self.train_x), generator=self.generator).to(self.device)
        aug, smoothing = self.variant.train.augment, self.variant.task.label_smoothing
        for i in range(self.steps_per_epoch):
            idx = order[i * self.batch : (i + 1) * self.batch]
            x = self.train_x[idx].float() / 255.0
            if aug is not None:
                x = self.augment(x, aug)
            for group in self.opt.param_groups:
                group["lr"] = float(self.lrs[self.step])
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.net(self.normalize(x)), self.train_y[idx], label_smoothing=smoothing)
            loss.backward()
            self.opt.step()
            self.step += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError("the PyTorch loss became non-finite")

    def logits(self, x: Any) -> Any:
        """Evaluation logits of normalised NCHW inputs, averaged over jaxadl's TTA shifts when the recipe has them."""
        if not self.variant.train.tta:
            return self.net(x)
        h, w = x.shape[2:]
        padded = self.torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        views = [self.net(padded[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]) for dy, dx in SHIFTS]
        return self.torch.stack(views).mean(0)

    def evaluate(self, batch: int = 512) -> float:
        self.net.eval()
        correct = 0
        with self.torch.no_grad():
            for i in range(0, len(self.val_x), batch):
                pred = self.logits(self.inputs(self.val_x[i : i + batch])).argmax(1)
                correct += int((pred == self.val_y[i : i + batch]).sum())
        return correct / len(self.val_x)


def run_torch(variant, data, initial: dict[str, Any], args: TimeToAccuracyConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    side = TorchRecipe(variant, data, initial, args.seed)
    track = Tracker("torch", args.target, time.perf_counter() - t0, 0.0)
    for _ in range(variant.train.epochs):
        t = time.perf_counter()
        side.train_epoch()
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        accuracy = side.evaluate()
        if track.add(train_s, time.perf_counter() - t, side.steps_per_epoch * side.batch, accuracy):
            if not args.all_epochs:
                break
    return track.summary()


# -- report ----------------------------------------------------------------------------------------------------
def print_table(result: dict[str, Any]) -> None:
    target = 100 * result["target"]
    print(
        f"\ntime to {target:g} % validation accuracy ({result['variant']}, {result['val_images']} val images)"
    )
    print(
        f"| side | epochs to {target:g} % | s to {target:g} % (compile excluded) | s incl. set-up + compile "
        "| train img/s | best val % |"
    )
    print("|---|---|---|---|---|---|")
    for name, s in result["sides"].items():
        if s["reached"]:
            cells = (
                s["epochs_to_target"],
                f"{s['seconds_to_target']:.1f}",
                f"{s['seconds_to_target_with_compile']:.1f}",
            )
        else:
            cells = (f"not within {len(s['epochs'])}", "-", "-")
        print(
            f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {s['images_per_s']:.0f} "
            f"| {100 * s['best_val_accuracy']:.2f} |"
        )
    if "ratio_time_per_image" in result:
        to_target = result.get("ratio_seconds_to_target")
        print(
            f"jaxadl / PyTorch: {'-' if to_target is None else f'{to_target:.2f}'} (time to target, compile "
            "excluded), "
            f"{result['ratio_time_per_image']:.2f} (training time per image)"
        )
    if result["busy"]:
        print(f"\n!! THE MACHINE WAS BUSY ({result['busy']}): not valid for a comparison !!")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data, variant = recipe(args)
    info = idle_machine(args.wait_idle)
    print(
        f"{variant.name}: {len(data.train)} train / {len(data.val)} val images, target {args.target:g}, "
        f"at most {variant.train.epochs} epochs, {info['cores']} cores",
        flush=True,
    )
    sides = {}
    sides["jaxadl"], initial = run_jaxadl(variant, data, args)
    if args.compare == "torch":
        sides["torch"] = run_torch(variant, data, initial, args)
    result: dict[str, Any] = {
        "variant": variant.name,
        "target": args.target,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "max_epochs": variant.train.epochs,
        "sides": sides,
        "machine": info,
    }
    j, t = sides["jaxadl"], sides.get("torch")
    if t is not None:
        result["ratio_time_per_image"] = t["images_per_s"] / j["images_per_s"]
        if j["reached"] and t["reached"]:
            result["ratio_seconds_to_target"] = j["seconds_to_target"] / t["seconds_to_target"]
    print_table(stamped(result, module="time_to_accuracy", argv=argv, json_path=args.json))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Traffic-sign CNN experiments (report section 1): `python -m experiments.cnn --help`.

Examples:
  python -m experiments.cnn --dataset=synthetic --out=runs/demo       # offline demo, a few minutes on CPU
  python -m experiments.cnn --optimizer=rprop                          # one variant on real GTSRB
  python -m experiments.cnn --grid --recipe=report                     # the report's table 1.4, faithfully
  python -m experiments.cnn --grid                                     # the same grid with the strong recipe
  python -m experiments.cnn --cv-folds=5 --cv-fold=2                   # fold 2 of 5 of the tracks validates

Cross-validation (--cv-folds=N --cv-fold=K): on GTSRB each class's training tracks are dealt into N folds
with --split-seed and fold K validates (whole tracks, so no sign is on both sides; a class with fewer
tracks than folds is missing from some folds' validation); --val-fraction is then not used. On the
synthetic signs, whose images are independent, the train and val images are pooled and cut into N folds
by image. An .npz has no track ids, so --cv-folds refuses it. The test split is never touched.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from experiments.cli import RunFolderFlags, check_cv_flags, check_seed_flags, opt, parse, run_cli
from experiments.configs.cnn import RECIPES, CNNRecipe

# The report's comparison grid (table 1.4): name, optimizer, batch norm, trials.
GRID = (
    ("baseline", "adam", False, 3),
    ("batch norm", "adam", True, 3),
    ("SGD", "sgd", False, 1),
    ("Rprop", "rprop", False, 1),
)
RPROP_ONLY = ("eta_minus", "eta_plus", "min_step", "max_step")  # flags only Rprop reads


@dataclasses.dataclass(frozen=True)
class CNNConfig(RunFolderFlags):
    """Options of the CNN experiment; None means "take the recipe's value" (experiments/configs/cnn.py)."""

    dataset: str = opt(
        "gtsrb",
        "training data: real GTSRB, the bundled synthetic signs, or an .npz of arrays (jaxadl.data.arrays)",
        ("gtsrb", "synthetic", "npz"),
    )
    data_dir: str | None = opt(
        None,
        "folder with the GTSRB archives or trees; with --dataset=npz, the .npz file",
        shown="$JAXADL_GTSRB_DIR, else download",
    )
    cache_dir: str | None = opt(
        None, "where prepared datasets are cached", shown="$JAXADL_DATA_DIR or ~/.cache/jaxadl"
    )
    download: bool = opt(True, "GTSRB: download the official archives when no local copy is found")
    image_size: int = opt(28, "input side length in pixels (the report uses 28)")
    crop: str = opt("roi", "GTSRB: crop to the sign's bounding box, or keep the whole image", ("roi", "none"))
    val_fraction: float = opt(
        0.1, "share of GTSRB training tracks held out for validation (whole tracks; not used with --cv-folds)"
    )
    recipe: str = opt("strong", "training recipe: faithful to the report, or the strong one", tuple(RECIPES))
    grid: bool = opt(False, "run the report's whole grid: baseline x3, batch norm x3, SGD x1, Rprop x1")
    optimizer: str = opt("adam", "optimizer (single-variant runs)", ("adam", "sgd", "rprop"))
    batch_norm: bool = opt(False, "BatchNorm after each conv (single-variant runs)")
    trials: int | None = opt(None, "trials per variant", shown="1, or the report's counts with --grid")
    epochs: int | None = opt(None, "training epochs")
    batch_size: int | None = opt(None, "training batch size")
    lr: float | None = opt(None, "peak learning rate (Rprop: initial step size)")
    momentum: float | None = opt(None, "SGD momentum")
    nesterov: bool | None = opt(None, "SGD Nesterov momentum")
    weight_decay: float | None = opt(None, "decoupled weight decay on kernels")
    eta_minus: float | None = opt(None, "Rprop: step-size factor when a gradient's sign flips")
    eta_plus: float | None = opt(None, "Rprop: step-size factor while a gradient keeps its sign")
    min_step: float | None = opt(None, "Rprop: smallest step size")
    max_step: float | None = opt(None, "Rprop: largest step size")
    schedule: str | None = opt(None, "learning-rate schedule", ("constant", "onecycle", "cosine"))
    label_smoothing: float | None = opt(None, "label smoothing")
    augment: bool | None = opt(None, "on-device random affine + brightness/contrast augmentation")
    rotate_deg: float | None = opt(None, "augmentation: largest rotation in degrees")
    translate_px: float | None = opt(None, "augmentation: largest shift in pixels")
    scale: float | None = opt(None, "augmentation: zoom drawn from [1 - S, 1 + S]")
    normalize: bool | None = opt(None, "per-channel mean/std input normalisation (else inputs / 255)")
    image_norm: bool | None = opt(None, "standardise each image by its own mean and std (else per channel)")
    equalize: bool | None = opt(
        None,
        "equalise each image's histogram (all channels pooled) before the normalisation, as classic GTSRB work did",
    )
    full_batch: bool | None = opt(
        None, "one step per epoch on the whole-training-set gradient (Rprop's setting)"
    )
    select: str | None = opt(None, "keep the last epoch or the best on validation", ("last", "best"))
    val_every: int = opt(
        1, "validate after every N-th epoch and the last (--select=best chooses among those); saves time"
    )
    ema: float | None = opt(None, "decay of the weight average that is evaluated (0 = off)")
    tta: bool | None = opt(None, "evaluate on the mean logits of each image and its four 1-pixel shifts")
    seed: int = opt(0, "random seed of trial 1 (trial i uses seed + i - 1)")
    split_seed: int = opt(
        0,
        "seed of the validation tracks, the cross-validation folds and the synthetic images; "
        "--seed leaves them fixed",
    )
    cv_folds: int = opt(
        0,
        "cross-validation: pool the train and val cases and cut them into N folds (0: off; the test split stays): "
        "GTSRB by whole tracks per class, synthetic by image, npz refused (no track ids)",
    )
    cv_fold: int = opt(0, "cross-validation: the fold that validates, 0..N-1 (with --cv-folds)")
    synthetic_train: int = opt(8600, "synthetic: training images")

    def __post_init__(self) -> None:
        """Checks the CLI's own options; the training values are checked by the library types they build."""
        super().__post_init__()
        if self.trials is not None and self.trials < 1:
            raise ValueError(f"--trials must be >= 1, got {self.trials}")
        if self.val_every < 1:
            raise ValueError(f"--val-every must be >= 1, got {self.val_every}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.dataset == "npz" and not self.data_dir:
            raise ValueError("--dataset=npz needs --data-dir=FILE.npz")
        check_cv_flags(self.cv_folds, self.cv_fold)
        check_seed_flags(self.seed, self.split_seed)
        if self.synthetic_train < 1:
            raise ValueError(f"--synthetic-train must be >= 1, got {self.synthetic_train}")
        if self.cv_folds and self.dataset == "npz":
            raise ValueError(
                "--cv-folds works with --dataset=gtsrb (whole tracks) or synthetic (by image), not npz: "
                "an .npz has no track ids, and folds cut by image would put frames of one sign on both sides"
            )
        for optimizer in self.optimizers():  # checked before any data is read
            r = self.resolved(optimizer)
            r.train(r.optim(optimizer))
            r.task(2, (0.0,), (1.0,))

    def data_paths(self) -> list[tuple[str, str]]:
        """(flag, path) of each data folder or file the flags name: a sweep checks them before any run starts."""
        return [("--data-dir", self.data_dir)] if self.data_dir else []

    def unused(self) -> list[tuple[str, str]]:
        """The flags this run would not use, with why: refused when given (experiments.cli.refuse_unused)."""
        out = []
        if self.dataset != "gtsrb":
            out.append(("val_fraction", f"with --dataset={self.dataset} (its validation split is fixed)"))
        elif self.cv_folds:
            out.append(("val_fraction", "with --cv-folds (fold --cv-fold validates)"))
        if self.dataset != "synthetic":
            out.append(("synthetic_train", f"with --dataset={self.dataset}"))
        if "rprop" not in self.optimizers():
            out += [(n, "without Rprop (--optimizer=rprop)") for n in RPROP_ONLY]
        if "sgd" not in self.optimizers():
            out += [(n, "without SGD (--optimizer=sgd)") for n in ("momentum", "nesterov")]
        if not all(self.resolved(o).augment for o in self.optimizers()):
            out += [
                (n, "without augmentation (add --augment)") for n in ("rotate_deg", "translate_px", "scale")
            ]
        return out

    def optimizers(self) -> list[str]:
        """The optimizers this run trains with: the grid's, or the one of --optimizer."""
        return sorted({spec[1] for spec in GRID}) if self.grid else [self.optimizer]

    def resolved(self, optimizer: str) -> CNNRecipe:
        """The recipe's values for `optimizer`, overridden by the flags given."""
        recipe = RECIPES[self.recipe][optimizer]
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(recipe)}
        return dataclasses.replace(recipe, **{k: v for k, v in given.items() if v is not None})


def load_data(cfg: CNNConfig):
    """The dataset named by the config (GTSRB is prepared once and cached), with the validation fold of
    --cv-folds when given."""
    if cfg.dataset == "synthetic":
        from jaxadl.data.base import cross_val_fold
        from jaxadl.data.synthetic import synthetic_signs

        n = cfg.synthetic_train
        data = synthetic_signs(
            n, max(n // 10, 43), max(n // 2, 43), image_size=cfg.image_size, seed=cfg.split_seed
        )
        return cross_val_fold(data, cfg.cv_folds, cfg.cv_fold, cfg.split_seed) if cfg.cv_folds else data
    if cfg.dataset == "npz":
        from jaxadl.data.arrays import load_npz

        return load_npz(cfg.data_dir)
    from jaxadl.data.gtsrb import load_gtsrb

    return load_gtsrb(
        cfg.data_dir,
        image_size=cfg.image_size,
        crop=cfg.crop,
        val_fraction=cfg.val_fraction,
        seed=cfg.split_seed,
        cache_dir=cfg.cache_dir,
        download=cfg.download,
        cv_folds=cfg.cv_folds,
        cv_fold=cfg.cv_fold,
    )


def channel_stats(images) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.reshape(-1, images.shape[-1]).astype("float64") / 255.0
    return tuple(float(v) for v in x.mean(0)), tuple(float(v) for v in x.std(0))


def build_variants(cfg: CNNConfig, data):
    """The variants to run: the report's grid or the single one the flags describe."""
    from jaxadl import SignCNN
    from jaxadl.experiment import Variant

    specs = GRID if cfg.grid else ((_name(cfg.optimizer, cfg.batch_norm), cfg.optimizer, cfg.batch_norm, 1),)
    mean, std = channel_stats(data.train.images)
    variants = []
    for name, optimizer, batch_norm, trials in specs:
        r = cfg.resolved(optimizer)
        task = r.task(data.num_classes, mean, std)
        train = r.train(r.optim(optimizer), cfg.seed, data.val is not None, cfg.val_every)
        model = SignCNN(num_classes=data.num_classes, batch_norm=batch_norm)
        variants.append(Variant(name, model, task, train, cfg.trials or (trials if cfg.grid else 1)))
    return variants


def _name(optimizer: str, batch_norm: bool) -> str:
    base = {"adam": "baseline", "sgd": "SGD", "rprop": "Rprop"}[optimizer]
    return f"{base} + batch norm" if batch_norm else base


def recipe_record(cfg: CNNConfig) -> dict[str, Any]:
    """What config.json keeps beside the flags: the recipe's name and each optimizer's resolved values (a
    resumed run is checked against them)."""
    return {
        "recipe": cfg.recipe,
        "resolved": {o: dataclasses.asdict(cfg.resolved(o)) for o in cfg.optimizers()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(CNNConfig, argv, __doc__, prog="python -m experiments.cnn")
    return run_cli("cnn", cfg, load_data, build_variants, recipe_record(cfg))


if __name__ == "__main__":
    sys.exit(main())

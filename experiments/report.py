"""The whole report, reproduced in one command: the CNN grid (the report's table 1.4), the U-Net grid
(table 2.1), then report.md and a self-contained report.html beside the original's numbers.

Examples:
  python -m experiments.report --gtsrb=DIR --lungs=DIR --out=runs/report          # quick profile, on a CPU
  python -m experiments.report --gtsrb=DIR --lungs=DIR --profile=full --out=runs/report-full
  python -m experiments.report --synthetic --out=runs/report-demo                 # offline, synthetic data

Each grid is an ordinary run folder (OUT/cnn, OUT/unet). Running the command again on the same --out
resumes: finished trials are reused and unfinished ones continue from their checkpoints, so an
interrupted report costs only what was lost; the document is then written again.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments import cnn, unet
from experiments.cli import EXIT_DIVERGED, main_guard, opt, parse
from experiments.configs import cnn as cnn_recipes
from experiments.configs import unet as unet_recipes


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much of the recipes a report trains: None keeps the recipe's epochs."""

    cnn_epochs: int | None
    rprop_steps: int | None
    unet_epochs: int | None
    together: bool = False  # a variant's trials as one program where that is faster (on an accelerator)

    def epochs(self, variant: Any, recipe_epochs: int) -> int:
        """The epochs a variant trains under this profile (full-batch Rprop: one step per epoch)."""
        wanted = self.unet_epochs if variant.task.kind == "segmentation" else self.cnn_epochs
        if variant.train.full_batch:
            wanted = self.rprop_steps
        return recipe_epochs if wanted is None else min(wanted, recipe_epochs)


# quick: about an hour on a 2-core CPU with GTSRB and the 124 development radiographs; full: the recipes
PROFILES = {
    "quick": Profile(cnn_epochs=4, rprop_steps=10, unet_epochs=8),
    "full": Profile(None, None, None, together=True),
}


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """Options of the one-command report."""

    gtsrb: str | None = opt(
        None,
        "GTSRB folder (official archives, their tree or the Train/Test re-packaging); scored on its test "
        "images when present, else on held-out validation tracks",
        shown="$JAXADL_GTSRB_DIR, else download",
    )
    lungs: str | None = opt(
        None,
        "lung radiographs: a folder of images/ + masks/ (validation cases held out and scored), a folder "
        "with train/ val/ test/, or the JSRT .IMG files with the SCR masks (the report's odd/even split)",
        shown="$JAXADL_JSRT_DIR",
    )
    synthetic: bool = opt(False, "both grids on the bundled synthetic data (offline; a demo, not a result)")
    profile: str = opt(
        "quick", "quick: fewer epochs and Rprop steps, for a CPU; full: the recipes", tuple(PROFILES)
    )
    only: str = opt("both", "which grid(s) to train and report", ("both", "cnn", "unet"))
    cache_dir: str | None = opt(
        None, "where prepared datasets are cached", shown="$JAXADL_DATA_DIR or ~/.cache/jaxadl"
    )
    out: str = opt(
        "runs/report", "report folder: OUT/cnn and OUT/unet run folders, OUT/report.md, OUT/report.html"
    )

    def __post_init__(self) -> None:
        if self.synthetic and (self.gtsrb or self.lungs):
            raise ValueError("--synthetic trains on the bundled synthetic data: drop --gtsrb and --lungs")
        for flag in ("gtsrb", "lungs"):
            path = getattr(self, flag)
            if path is not None and not Path(path).is_dir():
                raise ValueError(f"--{flag} {path} is not a folder")

    def cnn_config(self) -> cnn.CNNConfig:
        """The CNN experiment's options for the report's table 1.4 grid."""
        if self.synthetic:
            return cnn.CNNConfig(dataset="synthetic", grid=True, cache_dir=self.cache_dir)
        return cnn.CNNConfig(data_dir=self.gtsrb, grid=True, cache_dir=self.cache_dir)

    def unet_config(self) -> unet.UNetConfig:
        """The U-Net experiment's options for the report's table 2.1 grid."""
        if self.synthetic:
            return unet.UNetConfig(dataset="synthetic", grid=True, cache_dir=self.cache_dir)
        if self.lungs is None:
            return unet.UNetConfig(grid=True, cache_dir=self.cache_dir)
        root = Path(self.lungs)
        if (root / "images").is_dir():  # one folder of cases: no test split, the held-out cases are scored
            return unet.UNetConfig(
                dataset=f"folder:{root}", test_fraction=0.0, grid=True, cache_dir=self.cache_dir
            )
        if (root / "train").is_dir():
            return unet.UNetConfig(dataset=f"folder:{root}", grid=True, cache_dir=self.cache_dir)
        return unet.UNetConfig(dataset="jsrt", data_dir=str(root), grid=True, cache_dir=self.cache_dir)


def _differences() -> list[tuple[str, str, str]]:
    """(aspect, the original's recipe, this reproduction's) for every recipe value that differs, read from
    the recipes themselves, so the section cannot drift from them."""
    rows = []
    pairs = [
        ("CNN", cnn_recipes.RECIPES["report"]["adam"], cnn_recipes.RECIPES["strong"]["adam"]),
        ("CNN, SGD", cnn_recipes.RECIPES["report"]["sgd"], cnn_recipes.RECIPES["strong"]["sgd"]),
        ("CNN, Rprop", cnn_recipes.RECIPES["report"]["rprop"], cnn_recipes.RECIPES["strong"]["rprop"]),
        ("U-Net", unet_recipes.RECIPES["report"], unet_recipes.RECIPES["strong"]),
    ]
    seen: dict[tuple[str, str, str], str] = {}
    for name, original, strong in pairs:
        for f in dataclasses.fields(original):
            a, b = getattr(original, f.name), getattr(strong, f.name)
            if a == b:
                continue
            key = (name.split(",")[0], f.name.replace("_", " "), f"{a!r} → {b!r}")
            if key not in seen:  # a change the baseline already shows is not repeated for SGD and Rprop
                seen[key] = name
                rows.append((f"{name}: {f.name.replace('_', ' ')}", repr(a), repr(b)))
    return rows


def _train_grid(
    name: str, module: Any, cfg: Any, data: Any, out: Path, profile: Profile
) -> tuple[Path, dict[str, Any]]:
    """Train one grid into out/<name> under the profile (resuming a folder that holds it); its folder and
    results (results.json's content)."""
    from jaxadl.experiment import run_experiment
    from jaxadl.run_folder import RunFolder, RunFolderError

    variants = module.build_variants(cfg, data)
    variants = [
        dataclasses.replace(v, train=dataclasses.replace(v.train, epochs=profile.epochs(v, v.train.epochs)))
        for v in variants
    ]
    folder = out / name
    resume = RunFolder(folder).config.exists()
    if resume:
        print(f"{folder} exists: finished trials are reused, unfinished ones resume from their checkpoints")
    epochs = {v.name: v.train.epochs for v in variants}
    config = {
        "cli": {**dataclasses.asdict(cfg), "epochs_per_variant": epochs},
        **module.recipe_record(cfg),
        "report": True,
    }
    import jax

    together = profile.together and jax.default_backend() != "cpu"  # on CPU not faster: docs/benchmarks.md
    try:
        results = run_experiment(
            name, data, variants, folder, config, resume=resume, keep=1, together=together
        )
    except RunFolderError as e:
        if not resume:
            raise
        raise RunFolderError(
            f"--out: {folder} holds this report's {name} grid made by another command "
            f"({str(e).removeprefix('--resume: ')}); run the report as it was first run (the same --profile and "
            "data), or choose another --out"
        ) from None
    return folder, results


def profile_note(profile_name: str) -> str:
    """What the profile changes against the recipes, said in every table of the report."""
    p = PROFILES[profile_name]
    if p == PROFILES["full"]:
        return "full profile: the recipes as they are"
    strong_cnn, strong_rprop = cnn_recipes.RECIPES["strong"]["adam"], cnn_recipes.RECIPES["strong"]["rprop"]
    return (
        f"{profile_name} profile: CNN {p.cnn_epochs} epochs (recipe {strong_cnn.epochs}), Rprop {p.rprop_steps} "
        f"full-batch steps (recipe {strong_rprop.epochs}), U-Net {p.unet_epochs} epochs "
        f"(recipe {unet_recipes.STRONG.epochs})"
    )


def _load(name: str, module: Any, config: Any, cfg: ReportConfig) -> Any:
    """A grid's dataset; an error names this command's flag for the folder, not the experiment's --data-dir."""
    from jaxadl.data.base import DatasetError

    flag = {"cnn": "gtsrb", "unet": "lungs"}[name]
    try:
        return module.load_data(config)
    except DatasetError as e:
        message = e.naming(f"--{flag}")
        given = getattr(cfg, flag)
        where = f"--{flag} {given}: " if given and not message.startswith(f"--{flag} ") else ""
        raise DatasetError(where + message) from e


def run(cfg: ReportConfig, argv: Sequence[str]) -> int:
    """Train the grids (or reuse them) and write the report; exit code 3 when a trial diverged."""
    from jaxadl.experiment import check_out_folder

    check_out_folder(cfg.out)
    out = Path(cfg.out)
    t0 = time.perf_counter()
    grids = {"cnn": (cnn, cfg.cnn_config()), "unet": (unet, cfg.unet_config())}
    grids = {name: grid for name, grid in grids.items() if cfg.only in ("both", name)}
    # every dataset is read (prepared once) before any training: a missing one stops the report at once
    data = {name: _load(name, module, config, cfg) for name, (module, config) in grids.items()}
    out.mkdir(parents=True, exist_ok=True)
    runs, failed = {}, []
    for name, (module, config) in grids.items():
        runs[name], results = _train_grid(name, module, config, data[name], out, PROFILES[cfg.profile])
        failed += [f"{name}: {t['variant']} trial {t['trial']}" for t in results["trials"] if t.get("failed")]
    command = "python -m experiments.report " + shlex.join(argv)
    from jaxadl import document  # matplotlib and the predictors, only once the grids are trained

    md, html = document.build(
        out,
        runs,
        data,
        command=command,
        profile_note=profile_note(cfg.profile),
        differences=_differences(),
    )
    print(f"wrote {md} and {html} ({time.perf_counter() - t0:.0f} s in this invocation)")
    if failed:
        print(
            f"error: {len(failed)} trials diverged (non-finite loss): {', '.join(failed)}; the report's tables say "
            f"where (exit code {EXIT_DIVERGED})",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse(ReportConfig, argv, __doc__, prog="python -m experiments.report")
    return main_guard(lambda: run(cfg, argv), ReportConfig)


if __name__ == "__main__":
    sys.exit(main())

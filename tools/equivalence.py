"""Same-seed runs before and after a redesign: their records must be identical once timings are removed.

    python tools/equivalence.py run OUT_DIR         # the four runs, with the code of the current folder
    python tools/equivalence.py compare DIR_A DIR_B # exit 1 and the first differences if they differ

The runs: the CNN on mini-batches; the CNN with batch norm, a weight average and TTA (select best);
full-batch Rprop with batch norm; a tiny U-Net of two trials (so the mean-of-trials row is included).
Each writes a run folder and is re-evaluated with --eval-only; `canonical.json` beside them holds metrics.jsonl, results.json, eval.json and the tables without
wall-clock fields, the environment, or paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SYN = ["--dataset=synthetic", "--synthetic-train=512", "--keep=1"]
RUNS = {
    "cnn": ["experiments.cnn", *SYN, "--epochs=2", "--select=best"],
    "cnn_bn_ema_tta": [
        "experiments.cnn",
        *SYN,
        "--epochs=2",
        "--batch-norm",
        "--ema=0.9",
        "--tta",
        "--select=best",
    ],
    "rprop_full_batch_bn": [
        "experiments.cnn",
        *SYN,
        "--epochs=3",
        "--optimizer=rprop",
        "--batch-norm",
        "--full-batch",
        "--select=last",
    ],
    "unet": [
        "experiments.unet",
        "--dataset=synthetic",
        "--synthetic-train=8",
        "--synthetic-val=4",
        "--synthetic-test=4",
        "--image-size=64",
        "--depth=2",
        "--width=4",
        "--epochs=2",
        "--batch-size=4",
        "--trials=2",
        "--keep=1",
    ],
}
TIMING = {"seconds", "images_per_s", "eta_seconds", "compile_seconds", "train_seconds"}
DROP = {"environment", "run", "out", "date", "checkpoints"}


def _clean(obj: Any) -> Any:
    """The record without wall-clock fields, the machine or paths."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in TIMING | DROP}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def run(out: Path) -> None:
    """Run the four experiments into `out` and write out/canonical.json."""
    out.mkdir(parents=True, exist_ok=True)
    canonical = {}
    for name, (module, *args) in RUNS.items():
        folder = out / name
        cmd = [sys.executable, "-m", module, *args, f"--out={folder}", "--overwrite"]
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        again = [sys.executable, "-m", module, "--eval-only", f"--from-run={folder}"]  # the run's own options
        subprocess.run(again, check=True, stdout=subprocess.DEVNULL)  # --eval-only: eval.json
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line]
        results, evaluated = (json.loads((folder / f).read_text()) for f in ("results.json", "eval.json"))
        tables = {f: (folder / f).read_text().replace(str(folder), "RUN") for f in ("results.md", "eval.md")}
        canonical[name] = _clean({"metrics": metrics, "results": results, "eval": evaluated, **tables})
    (out / "canonical.json").write_text(json.dumps(canonical, indent=1, sort_keys=True))
    print(f"wrote {out / 'canonical.json'}")


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two records differ, as paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def compare(a: Path, b: Path) -> int:
    """0 if the two canonical records are identical, else 1 with the first differences printed."""
    left, right = (json.loads((d / "canonical.json").read_text()) for d in (a, b))
    diffs = _diff(left, right)
    for d in diffs[:20]:
        print(d)
    print("identical" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)

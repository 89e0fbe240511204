"""The original report's numbers, in one place: the assignment report the project reproduces, section 1.4
table and section 2.1 table (its figures 10-30 are numbered after the rows of these tables), and the slips in
its code listings. Nothing else in the code writes these numbers down; the document (jaxadl.document) sets
them beside the reproduced ones.

The keys are the grids' variant names (experiments/cnn.py and experiments/unet.py). A U-Net grid whose
batch-norm setting differs from its recipe's appends " + batch norm" (or " + no batch norm") to every name:
`key(name)` is the name before " + ", which is what matches a row here.
"""

from __future__ import annotations

SOURCE = "the assignment report the project reproduces, section 1.4 table and section 2.1 table"

# Table 1.4: "Accuracy of the Network on Test Images" per trial, in percent.
CNN_ACCURACY: dict[str, tuple[float, ...]] = {
    "baseline": (95.89, 95.82, 95.88),
    "batch norm": (86.36, 87.88, 87.00),
    "SGD": (90.89,),
    "Rprop": (85.16,),
}
# The row names as the report prints them.
CNN_LABELS = {
    "baseline": "Baseline",
    "batch norm": "With Batch Normalization",
    "SGD": "With Different Optimizer SGD",
    "Rprop": "With Different Optimizer Rprop",
}

# Table 2.1: test cases, and (mean, std, min) of the per-image F1, per trial.
UNET_CASES = 123
UNET_F1: dict[str, tuple[tuple[float, float, float], ...]] = {
    "baseline": ((0.9760, 0.0128, 0.9241), (0.9744, 0.0159, 0.9053)),
    "nearest": ((0.9762, 0.0126, 0.9257), (0.9735, 0.0167, 0.9081)),
    "ELU": ((0.9778, 0.0121, 0.9321), (0.9766, 0.0133, 0.9324)),
}
UNET_LABELS = {
    "baseline": "Baseline",
    "nearest": "With Model Nearest",
    "ELU": "With Activation Function ELU",
}

# The report's figures follow its tables' rows: the CNN trials' losses from figure 10, the U-Net trials'
# training and validation histories from 19, their evaluation on a single test image from 25.
FIRST_FIGURE = {"cnn loss": 10, "unet history": 19, "unet example": 25}
FIGURE_KINDS = {"cnn loss": "Loss", "unet history": "Training and Validation Histories",
                "unet example": "Evaluation on Single Test-set Image"}  # fmt: skip

# The report's code listings differ from its prose and its printed model (section 1.1.1), which are the
# intended design and what jaxadl builds.
LISTING_SLIPS = (
    "the CNN listing's first convolution takes 1 input channel; GTSRB signs have 3 (RGB)",
    "the CNN listing's third convolution is 5×5, which leaves 3·3·32 = 288 features for the dense layer; "
    "the printed model's 3×3 gives 4·4·32 = 512, which its Linear(512, 43) expects",
    "the CNN listing applies a ReLU to the logits; the printed model ends with the Linear layer",
)


def key(variant: str) -> str:
    """The report's row a variant reproduces: its name before " + "."""
    return variant.split(" + ")[0]


def cnn_accuracy(variant: str) -> tuple[float, ...]:
    """Table 1.4's test accuracies (percent) for a variant's trials; () when the report has no such row."""
    return CNN_ACCURACY.get(key(variant), ())


def unet_f1(variant: str) -> tuple[tuple[float, float, float], ...]:
    """Table 2.1's (mean, std, min) F1 for a variant's trials; () when the report has no such row."""
    return UNET_F1.get(key(variant), ())


def label(grid: str, variant: str) -> str:
    """The report's name of a variant's row ("—" when it has none); grid: "cnn" or "unet"."""
    return (CNN_LABELS if grid == "cnn" else UNET_LABELS).get(key(variant), "—")


def figure(kind: str, variant: str, trial: int) -> str | None:
    """The report's figure that a trial's figure corresponds to, e.g. "figure 10 (Baseline Trial 1 Loss)";
    None when it has none. kind: "cnn loss", "unet history" or "unet example"."""
    grid = kind.split()[0]
    rows = [
        (k, t) for k, v in (CNN_ACCURACY if grid == "cnn" else UNET_F1).items() for t in range(1, len(v) + 1)
    ]
    if (key(variant), trial) not in rows:
        return None
    number = FIRST_FIGURE[kind] + rows.index((key(variant), trial))
    return f"figure {number} ({label(grid, variant)} Trial {trial} {FIGURE_KINDS[kind]})"

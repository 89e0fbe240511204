"""The reproduced report (jaxadl.document) from two tiny run folders: its tables hold the runs' numbers beside
the original's, every figure exists and is embedded, the confusion matrix adds up, and the markdown and HTML
hold the same tables."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from experiments import cnn, unet
from experiments.cli import parse
from jaxadl import document, seed
from jaxadl.experiment import run_experiment

NOTE = "tiny profile: 1 epoch"


def _grid(module, config_cls, argv, keep_variants):
    """Data and a subset of the experiment's own grid variants (trials as given), one epoch each."""
    cfg = parse(config_cls, ["--grid", "--epochs=1", *argv], "", prog="test")
    data = module.load_data(cfg)
    variants = {v.name: v for v in module.build_variants(cfg, data)}
    return data, [dataclasses.replace(variants[name], trials=n) for name, n in keep_variants]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both grids trained tiny with the report recipe (CNN: baseline x2, SGD x1; U-Net: baseline x2), then the
    document."""
    root = tmp_path_factory.mktemp("report")
    data, runs = {}, {}
    grids = {
        "cnn": (cnn, cnn.CNNConfig, ["--dataset=synthetic", "--synthetic-train=256", "--recipe=report"], [("baseline", 2), ("SGD", 1)]),
        "unet": (
            unet,
            unet.UNetConfig,
            ["--dataset=synthetic", "--synthetic-train=8", "--synthetic-val=4", "--synthetic-test=6",
             "--image-size=32", "--depth=2", "--width=4", "--recipe=report"],
            [("baseline", 2)],
        ),
    }  # fmt: skip
    for name, (module, config_cls, argv, keep) in grids.items():
        data[name], variants = _grid(module, config_cls, argv, keep)
        runs[name] = root / name
        run_experiment(
            name, data[name], variants, runs[name], {"recipe": "report"}, keep=1, log=lambda s: None
        )
    differences = [("CNN: epochs", "10", "30"), ("U-Net: batch norm", "False", "True")]
    md, html = document.build(
        root, runs, data, command="python -m experiments.report --synthetic", profile_note=NOTE,
        differences=differences, commit="abc1234",
    )  # fmt: skip
    results = {k: json.loads((p / "results.json").read_text()) for k, p in runs.items()}
    return {"md": md, "html": html, "text": md.read_text(), "page": html.read_text(), "data": data,
            "runs": runs, "results": results}  # fmt: skip


# parsing the two renderings ------------------------------------------------------------------------------


def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by their caption's first sentence ("Table 1.4"): header row, then body rows."""
    lines, tables = text.splitlines(), {}
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and lines[i + 1].startswith("|---"):
            caption = lines[i - 2].strip("*")
            rows = []
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                if j != i + 1:
                    cells = re.split(r"(?<!\\)\|", lines[j].strip()[1:-1])
                    rows.append([c.strip().replace("\\|", "|").replace("`", "") for c in cells])
                j += 1
            tables[caption.split(". ")[0]] = rows
            i = j
        else:
            i += 1
    return tables


class _HTMLTables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._caption = {}, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = []
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "caption":
            self._caption = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._rows[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "caption":
            self._name, self._caption = self._caption.split(". ")[0], None
        elif tag == "table":
            self.tables[self._name] = self._rows

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._caption is not None:
            self._caption += data


def html_tables(page: str) -> dict[str, list[list[str]]]:
    parser = _HTMLTables()
    parser.feed(page)
    return parser.tables


def rows_by(table: list[list[str]], *keys: str) -> dict[tuple[str, ...], dict[str, str]]:
    """Body rows as {column: cell}, keyed by the given columns' cells."""
    header, body = table[0], table[1:]
    out = {}
    for row in body:
        cells = dict(zip(header, row, strict=True))
        out[tuple(cells[k] for k in keys)] = cells
    return out


def number(cell: str) -> float:
    return float(re.match(r"-?[0-9.]+", cell).group())


def seconds(cell: str) -> float:
    """A wall-time cell ("12.3 s", "4 min 05 s", "1 h 02 min") in seconds."""
    units = {"h": 3600, "min": 60, "s": 1}
    return sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)\s(h|min|s)\b", cell))


# the tests -----------------------------------------------------------------------------------------------


def test_tables_hold_the_runs_numbers(built):
    tables = md_tables(built["text"])
    t14 = rows_by(tables["Table 1.4"], "variant", "trial")
    cnn_results = built["results"]["cnn"]
    for t in cnn_results["trials"]:
        row = t14[(t["variant"], str(t["trial"]))]
        assert number(row["reproduced test accuracy"]) == pytest.approx(
            t["eval"]["accuracy"]["mean"] * 100, abs=0.005
        )
        assert row["selected epoch"] == str(t["best_epoch"]) and row["epochs"] == str(t["epochs_run"])
        assert seconds(row["wall time"]) == pytest.approx(t["train_seconds"] + t["compile_seconds"], abs=1.0)
    (ensemble,) = cnn_results["ensembles"]
    row = t14[("baseline", "mean of trials 1, 2")]
    assert number(row["reproduced test accuracy"]) == pytest.approx(
        ensemble["eval"]["accuracy"]["mean"] * 100, abs=0.005
    )
    accs = [t["eval"]["accuracy"]["mean"] * 100 for t in cnn_results["trials"] if t["variant"] == "baseline"]
    mean_std = t14[("baseline", "mean ± std")]["reproduced test accuracy"]
    assert [float(v) for v in re.findall(r"[0-9.]+", mean_std)] == pytest.approx(
        [np.mean(accs), np.std(accs, ddof=1)], abs=0.005
    )
    assert t14[("SGD", "95 % interval")]["reproduced test accuracy"] == "—"  # one trial: no interval

    t21 = rows_by(tables["Table 2.1"], "variant", "trial")
    for t in built["results"]["unet"]["trials"]:
        row = t21[(t["variant"], str(t["trial"]))]
        assert row["test cases"] == str(t["eval"]["f1"]["n"]) == "6"
        for stat in ("mean", "std", "min"):
            assert number(row[f"{stat} F1"]) == pytest.approx(t["eval"]["f1"][stat], abs=5e-5)
        assert number(row["cleaned min F1"]) == pytest.approx(t["eval"]["f1_post"]["min"], abs=5e-5)


def test_the_seed_numbers_stand_beside_them(built):
    tables = md_tables(built["text"])
    t14 = rows_by(tables["Table 1.4"], "variant", "trial")
    for variant, accs in seed.CNN_ACCURACY.items():
        for trial, acc in enumerate(accs, 1):
            row = t14[(variant, str(trial))]
            assert row["original test accuracy"] == f"{acc:.2f} %"
            assert row["original row"] == seed.CNN_LABELS[variant]
    assert t14[("baseline", "1")]["original test accuracy"] == "95.89 %"
    assert t14[("batch norm", "2")]["reproduced test accuracy"] == "not run"  # the grid left it out
    t21 = rows_by(tables["Table 2.1"], "variant", "trial")
    for variant, trials in seed.UNET_F1.items():
        for trial, (mean, std, low) in enumerate(trials, 1):
            row = t21[(variant, str(trial))]
            assert (
                row["original cases"],
                row["original mean F1"],
                row["original std F1"],
                row["original min F1"],
            ) == ("123", f"{mean:.4f}", f"{std:.4f}", f"{low:.4f}")
    assert t21[("baseline", "1")]["original min F1"] == "0.9241"
    assert t21[("ELU", "2")]["original min F1"] == "0.9324" and t21[("ELU", "2")]["mean F1"] == "not run"


def test_every_figure_exists_and_is_embedded(built):
    text, page, folder = built["text"], built["page"], built["md"].parent
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(linked) >= 2 + 3 + 2 + 2 + 3  # overlays, losses, histories, examples, extras
    for link in linked:
        assert (folder / link).is_file(), link
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(linked) == len(re.findall(r"<img ", page))
    assert [base64.b64decode(e) for e in embedded] == [(folder / link).read_bytes() for link in linked]
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http" not in page and "<link" not in page
    for n in (10, 11, 16, 19, 20, 25, 26):
        assert f"figure {n} (" in text  # each trial's figure names the original's


def test_the_confusion_matrix_adds_up(built):
    matrix = document.confusion(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 4)
    np.testing.assert_array_equal(matrix, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])

    from jaxadl import predict

    test = built["data"]["cnn"].test
    counts = np.bincount(test.labels, minlength=43)
    predicted = (
        predict.load(built["runs"]["cnn"], "baseline", trial="all").batch_logits(test.images).argmax(-1)
    )
    matrix = document.confusion(test.labels, predicted, 43)
    np.testing.assert_array_equal(matrix.sum(1), counts)
    ensemble = built["results"]["cnn"]["ensembles"][0]["eval"]["accuracy"]["mean"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(ensemble, abs=1e-6)

    per_class = rows_by(md_tables(built["text"])["Per-class accuracy on the test split"], "class")
    assert [int(per_class[(str(c),)]["test images"]) for c in range(43)] == counts.tolist()
    assert [int(per_class[(str(c),)]["correct"]) for c in range(43)] == np.diag(matrix).tolist()


def test_html_and_markdown_hold_the_same_tables(built):
    md, page = md_tables(built["text"]), html_tables(built["page"])
    assert md == page
    assert {"Table 1.4", "Table 2.1", "Per-class accuracy on the test split"} <= set(md)
    for caption in re.findall(r"<caption>(.*?)</caption>", built["page"]):
        assert NOTE[:1].upper() + NOTE[1:] in caption  # the profile note in every table


def test_the_lung_extras_sort_the_cases(built):
    ensemble = built["results"]["unet"]["ensembles"][0]
    per_case = next(t for k, t in md_tables(built["text"]).items() if k.startswith("Per-case F1 of baseline"))
    f1 = [number(r[per_case[0].index("mean of trials F1")]) for r in per_case[1:]]
    assert f1 == sorted(f1) and len(f1) == 6
    assert sorted(f1) == pytest.approx(sorted(ensemble["per_image"]["f1"]), abs=5e-5)
    assert "report_files/unet_worst3.png" in built["text"]


def test_a_missing_run_is_said_and_the_seed_still_shown(tmp_path):
    md, html = document.build(tmp_path, {"cnn": tmp_path / "nothing"}, commit="abc1234")
    text = md.read_text()
    assert "holds no results.json" in text and "No U-Net run was given" in text
    t14 = rows_by(md_tables(text)["Table 1.4"], "variant", "trial")
    assert t14[("Rprop", "1")]["original test accuracy"] == "85.16 %"
    assert t14[("Rprop", "1")]["reproduced test accuracy"] == "not run"
    assert md_tables(text) == html_tables(html.read_text())


def test_an_interrupted_build_leaves_the_last_report_whole(tmp_path, monkeypatch):
    """The figures are built aside and the pages written whole, after everything is made: a failure half-way
    (Ctrl-C, a full disk) leaves the earlier report.md, report.html and their figures as they were."""
    md, html = document.build(tmp_path, {"cnn": tmp_path / "nothing"}, commit="abc1234")
    (tmp_path / "report_files" / "earlier.png").write_bytes(b"png")
    before = md.read_text(), html.read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(document, "to_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        document.build(tmp_path, {"cnn": tmp_path / "nothing"}, commit="def5678")
    assert (md.read_text(), html.read_text()) == before and "abc1234" in before[0]
    assert (tmp_path / "report_files" / "earlier.png").read_bytes() == b"png"
    monkeypatch.undo()
    document.build(tmp_path, {"cnn": tmp_path / "nothing"}, commit="def5678")  # the next build cleans up
    assert "def5678" in md.read_text() and not (tmp_path / "report_files" / "earlier.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md", "report_files"]


def test_the_seed_rows_match_the_grids_names():
    assert seed.unet_f1("nearest + batch norm") == seed.UNET_F1["nearest"]
    assert seed.cnn_accuracy("Rprop") == (85.16,) and seed.cnn_accuracy("Adagrad") == ()
    assert seed.figure("cnn loss", "Rprop", 1) == "figure 17 (With Different Optimizer Rprop Trial 1 Loss)"
    assert seed.figure("unet history", "nearest + no batch norm", 1).startswith(
        "figure 21 (With Model Nearest"
    )
    assert seed.figure("unet example", "ELU", 2).startswith("figure 30 ")
    assert seed.figure("cnn loss", "baseline", 4) is None


def test_a_damaged_run_record_names_its_file(tmp_path):
    """A results.json cut short (a full disk) stops the build with its path, before any page is written."""
    run = tmp_path / "cnn"
    run.mkdir()
    (run / "results.json").write_text('{"trials": [')
    with pytest.raises(ValueError, match=re.escape(f"{run / 'results.json'}: cannot be read as JSON")):
        document.build(tmp_path / "out", {"cnn": run}, commit="abc1234")
    assert not (tmp_path / "out").exists()

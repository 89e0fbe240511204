"""RunFolder: the one place that names a run folder's files."""

import json

import pytest

from jaxadl.run_folder import RunFolder, slug


def test_paths_of_a_run_folder(tmp_path):
    f = RunFolder(str(tmp_path / "run"))
    assert f.root == tmp_path / "run"
    assert (f.config.name, f.metrics.name, f.results_json.name, f.results_md.name) == (
        "config.json",
        "metrics.jsonl",
        "results.json",
        "results.md",
    )
    assert (f.eval_json.name, f.eval_md.name, f.variants_plot.name) == (
        "eval.json",
        "eval.md",
        "variants.png",
    )
    assert (
        slug("Batch norm + SGD") == "batch-norm---sgd"
        and RunFolder.tag("batch norm", 2) == "batch-norm_trial2"
    )
    assert f.trial_record("batch norm", 2) == tmp_path / "run" / "trials" / "batch-norm_trial2.json"
    assert f.checkpoints("ELU", 1) == tmp_path / "run" / "checkpoints" / "elu_trial1"
    assert f.plot("baseline", 3, "history") == tmp_path / "run" / "plots" / "baseline_trial3_history.png"


def test_trial_records_in_file_name_order(tmp_path):
    f = RunFolder(tmp_path)
    assert f.trial_records() == []  # no trials/ folder yet
    for variant, trial in (("nearest", 1), ("baseline", 2), ("baseline", 1)):
        path = f.trial_record(variant, trial)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"variant": variant, "trial": trial}))
    got = [(r["variant"], r["trial"]) for r in f.trial_records()]
    assert got == [("baseline", 1), ("baseline", 2), ("nearest", 1)]


def test_a_damaged_record_is_an_error_that_names_its_file(tmp_path):
    f = RunFolder(tmp_path)
    path = f.trial_record("baseline", 1)
    path.parent.mkdir()
    path.write_text('{"variant": "baseline", ')
    with pytest.raises(ValueError, match=f"^{path}: cannot be read as JSON"):
        f.trial_records()
    path.write_text('"baseline"')
    with pytest.raises(ValueError, match=f"^{path}: holds a JSON str, not the object a run writes$"):
        f.trial_records()

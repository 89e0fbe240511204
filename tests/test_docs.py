"""The documentation cannot drift from the code: the generated pages are current, every `--flag` the pages
name exists in the command it belongs to, every repository path they name exists, and README names no
path outside the repository. Fast: the parsers are built, nothing is trained."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tools import docs

ROOT = docs.ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Written by other work in progress and linked from these pages; the check skips them until they land.
PENDING: set[str] = set()

# Commands whose flags are not jaxadl's: a flag after one of them on the same line is theirs.
EXTERNAL = {"pytest", "pip", "ruff", "git", "srun", "mutmut", "uv", "tar", "unzip", "curl", "wget"}
# A sweep passes its jobs' flags (--common, job lines) to the experiment it runs.
PASSES_TO = {"python -m experiments.sweep": ("python -m experiments.cnn", "python -m experiments.unet")}

COMMAND = re.compile(
    r"python -m ([\w.]+)"  # a module: jaxadl's CLIs are checked, any other is external
    r"|python3? [\w./-]+\.py|\.ci/run"  # a script: external (its own argparse)
    r"|(?<![\w./-])(?:" + "|".join(sorted(EXTERNAL)) + r")(?![\w-])"
)
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
TOP = r"(?:jaxadl|experiments|benchmarks|tests|tools|docs|\.ci)/[\w./-]*|pyproject\.toml"
REPO_PATH = re.compile(rf"(?<![\w./~-])({TOP})")
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def flags() -> dict[str, set[str]]:
    return docs.cli_flags()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) with shell continuations (a trailing backslash) joined."""
    out: list[tuple[int, str]] = []
    pending = ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.rstrip().endswith("\\") and not line.rstrip().endswith("\\|"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((number, pending + line))
        pending = ""
    return out


def flag_errors(text: str, flags: dict[str, set[str]]) -> list[str]:
    """Every `--flag` of `text` that its command (the nearest `python -m ...` before it on the line) lacks;
    a flag with no command before it must belong to some jaxadl command."""
    every = set().union(*flags.values())
    errors = []
    for number, line in _logical_lines(text):
        commands = [(m.start(), m.group(1) and f"python -m {m.group(1)}") for m in COMMAND.finditer(line)]
        for m in FLAG.finditer(line):
            flag = m.group().split("=")[0]
            if flag.startswith("--xla_"):  # XLA_FLAGS, not a command-line option
                continue
            before = [cmd for start, cmd in commands if start < m.start()]
            command = before[-1] if before else None
            if before and (command is None or command not in flags):
                continue  # an external tool's flag (pytest, pip, python -m something else)
            allowed = every if command is None else flags[command]
            allowed = allowed.union(*(flags[c] for c in PASSES_TO.get(command, ())))
            if flag not in allowed:
                where = command or "any jaxadl command"
                errors.append(f"line {number}: {m.group()} is not a flag of {where}")
    return errors


def path_errors(text: str, page: Path) -> list[str]:
    """Every repository path `text` names (`jaxadl/...`, `docs/...`, relative links) that does not exist."""
    errors = []
    named = {m.group(1).rstrip(".,:;") for m in REPO_PATH.finditer(text)}
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        named.add(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else target)
    for path in sorted(named):
        if path.rstrip("/") in PENDING:
            continue
        if not (ROOT / path).exists():
            errors.append(f"{path} does not exist")
    return errors


def test_generated_docs_are_current():
    """docs/cli.md and the results tables in README.md and docs/results.md are what `python -m tools.docs`
    writes now (from the parsers and docs/results.json)."""
    stale = [str(p.relative_to(ROOT)) for p, text in docs.generated().items() if p.read_text() != text]
    assert not stale, f"stale: {stale}; run `python -m tools.docs`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_flag_named_exists(page, flags):
    errors = flag_errors(page.read_text(), flags)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_exists(page):
    errors = path_errors(page.read_text(), page)
    assert not errors, "\n".join(errors)


def test_readme_names_no_path_outside_the_repository():
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text
    assert not re.search(r"\]\(\.\./", text), "README links outside the repository"


def test_readme_is_short_and_counts_no_tests():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 12_500, "README is the front door: move detail into docs/"
    assert not re.search(r"\b\d+ tests\b", text), "test counts go stale; say how to count them"


def test_the_checks_catch_typos(flags):
    """The checks above fail on a misspelt flag, a flag of another command, and a wrong path."""
    assert flag_errors("python -m experiments.unet --rotate=10", flags)
    assert flag_errors("the lever `--rotate=10` was noise", flags)
    assert flag_errors("`python -m experiments.cnn --dataset=synthetic --width=32`", flags)  # a U-Net flag
    assert not flag_errors("`python -m experiments.unet --rotate-deg=10 --width=32`", flags)
    assert not flag_errors("`python -m pytest --collect-only -q`", flags)
    assert not flag_errors("`python tools/equivalence.py run --any` and `mutmut run --paths=jaxadl`", flags)
    sweep = "python -m experiments.sweep --jobs=j.txt --common='--data-dir=GTSRB_DIR'"
    assert not flag_errors(sweep, flags)
    page = ROOT / "docs" / "results.md"
    assert path_errors("see `jaxadl/trian.py`", page)
    assert path_errors("see [the notes](recipe_note.md)", page)
    assert not path_errors("see `jaxadl/train.py` and [the notes](recipe_notes.md#u-net-jsrt-lungs)", page)


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest"
 errors="1" failures="2" skipped="3" tests="40" time="501.7" timestamp="2026-12-03T17:06:55+00:00"></testsuite>
</testsuites>"""


def test_suites_are_read_from_ci_junit_files(tmp_path: Path) -> None:
    for stem in docs.SUITES:
        (tmp_path / f"{stem}.xml").write_text(JUNIT)
    records = docs.read_suites(tmp_path, "cpu2")
    assert [r["suite"] for r in records] == ["fast", "slow", "lowest"]
    fast = records[0]
    counts = [fast[k] for k in ("tests", "passed", "skipped", "failures", "errors")]
    assert counts == [40, 34, 3, 2, 1]
    assert (fast["seconds"], fast["date"], fast["machine"]) == (502, "2026-12-03", "cpu2")
    row = docs.suites_table({"machines": {"cpu2": ["2-core CPU", ""]}, "suites": records}).splitlines()[2]
    assert row == "| fast | `python -m pytest -q` | 40 | 34 | 3 | 3 | 8:22 | 2-core CPU, 2026-12-03 |"
    noted = docs.read_suites(tmp_path, "cpu2", note="beside a training run")
    row = docs.suites_table({"machines": {"cpu2": ["2-core CPU", ""]}, "suites": noted}).splitlines()[2]
    assert row.endswith("| 8:22 | 2-core CPU, 2026-12-03 (beside a training run) |")
    (tmp_path / "slow.xml").write_text(JUNIT[:90])  # cut short by a stopped run
    with pytest.raises(ValueError, match="slow.xml: not a whole JUnit file"):
        docs.read_suites(tmp_path, "cpu2")
    (tmp_path / "slow.xml").unlink()
    with pytest.raises(FileNotFoundError, match="slow.xml"):
        docs.read_suites(tmp_path, "cpu2")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--check", "--suites=.ci/junit", "--machine=cpu2"], "--check writes nothing, and --suites records"),
        (["--suites=.ci/junit"], "--suites needs --machine=KEY (lead, cpu2"),
        (["--machine=cpu2"], "--machine and --note only with --suites"),
    ],
)
def test_contradictory_or_missing_flags_exit_2_before_anything_is_written(argv, message, capsys):
    before = docs.RESULTS.read_bytes()
    with pytest.raises(SystemExit) as e:
        docs.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert docs.RESULTS.read_bytes() == before


def test_results_json_is_written_whole(tmp_path, monkeypatch):
    """Written aside and renamed: a failure before the rename (disk full, Ctrl-C) leaves the old file."""
    path = tmp_path / "results.json"
    path.write_text("old")
    docs.save_results({"a": "é"}, path)
    written = '{\n "a": "é"\n}\n'
    assert path.read_text() == written and [p.name for p in tmp_path.iterdir()] == ["results.json"]

    def no_room(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "replace", no_room)
    with pytest.raises(OSError):
        docs.save_results({"b": 1}, path)
    assert path.read_text() == written


def test_rows_marked_not_for_readme_stay_in_results_md():
    results = docs.load_results()
    hidden = [r for r in results["tables"]["runs"]["rows"] if r.get("readme") is False]
    assert hidden, "docs/results.json marks no run row readme: false"
    readme, full = docs.runs_table(results, "runs"), docs.full_table(results, "runs")
    for r in hidden:
        assert r["value"] not in readme and r["value"] in full


def test_a_cross_validated_table_shows_its_reference_lever_in_readme():
    results = docs.load_results()
    results["tables"]["unet_cv"]["rows"] = []
    assert docs.cv_line(results, "unet_cv", "default").endswith("not measured yet.")
    assert docs.full_table(results, "unet_cv").endswith("not measured yet.")
    row = {"variant": "default", "original": "none", "value": "0.98 / 0.96 / 0.94", "detail": "124 cases"}
    row |= {"command": "python -m experiments.unet --cv-fold=K", "date": "2026-12-03", "machine": "cpu2"}
    focus = {**row, "variant": "focus1", "original": "`--focus=1`", "value": "0.97 / 0.95 / 0.93"}
    elu = {**row, "variant": "elu", "original": "`--a=1` `--b=2`", "value": "0.99 / 0.95 / 0.92"}
    results["tables"]["unet_cv"]["rows"] = [focus, row, elu]
    line = docs.cv_line(results, "unet_cv", "default")
    assert "**0.98 / 0.96 / 0.94** (124 cases)" in line
    assert line.endswith(
        " 2 other levers in [docs/results.md](docs/results.md); the highest minimum: `--focus=1` 0.97 / 0.95 / 0.93."
    )
    assert "`python -m experiments.unet --cv-fold=K`, 2-core CPU, 2026-12-03" in line
    focus["detail"], row["detail"] = "100 cases; folds 0,1,2,3", "124 cases; folds 0,1,2,3,4"
    assert docs.cv_line(results, "unet_cv", "default").endswith(" 0.97 / 0.95 / 0.93 (folds 0,1,2,3 only).")
    # without the other levers (README's GTSRB line: its table of variants shows them)
    assert docs.cv_line(results, "unet_cv", "default", others=False).endswith("2-core CPU, 2026-12-03.")


def test_the_worst_cases_table_pairs_the_levers_that_kept_their_cases():
    results = docs.load_results()
    ref = {"variant": "default", "cases": {"A": 0.99, "B": 0.91, "C": 0.95, "D": 0.97}}
    other = {"variant": "elu", "cases": {"B": 0.93, "D": 0.96}}
    results["tables"]["unet_cv"]["rows"] = [other, {"variant": "focus1"}, ref]
    table = docs.worst_table(results, "unet_cv", "default", n=3).splitlines()
    assert table[2] == "| case | default | elu |"  # the reference first; a lever without cases left out
    assert table[4:] == ["| B | 0.9100 | 0.9300 |", "| C | 0.9500 |  |", "| D | 0.9700 | 0.9600 |"]
    results["tables"]["unet_cv"]["rows"] = [other]
    assert docs.worst_table(results, "unet_cv", "default") == "The default lever's cases: not recorded yet."


def test_the_fold_table_pairs_each_lever_with_the_reference_on_its_own_folds():
    rows = [
        {"variant": "ref", "original": "none", "fold_accuracy": {"0": 0.99, "1": 0.98, "2": 0.95}},
        {"variant": "a", "original": "`--x`", "fold_accuracy": {"1": 0.96}},
        {"variant": "b", "original": "`--y`", "fold_accuracy": {"0": 0.98, "2": 0.99}},
        {"variant": "lungs-like", "original": "`--z`"},  # no per-fold figures: not a row
    ]
    table = docs.fold_table({"tables": {"t": {"rows": rows}}}, "t", "ref")
    lines = table.splitlines()
    assert "| fold 0 | fold 1 | fold 2 | mean | ref | difference |" in lines[2]
    assert lines[4] == "| ref | none | 99.00 | 98.00 | 95.00 | 97.33 |  |  |"
    assert lines[5] == "| a | `--x` |  | 96.00 |  | 96.00 | 98.00 | -2.00 |"
    assert lines[6] == "| b | `--y` | 98.00 |  | 99.00 | 98.50 | 97.00 | +1.50 |"
    assert len(lines) == 7
    assert "not recorded yet" in docs.fold_table({"tables": {"t": {"rows": rows}}}, "t", "other")


def test_the_variant_table_gives_each_variants_best_single_run_and_mean_of_runs_against_the_reference():
    cmd = "python -m experiments.cnn --data-dir=GTSRB_DIR --cv-folds=5 --cv-fold=K"
    ens = "python -m tools.cv_ensemble cnn-cv"
    rows = [
        {"variant": "ref", "command": cmd, "fold_accuracy": {"0": 0.99, "1": 0.98}},
        {"variant": "r1", "command": f"{cmd} --optimizer=rprop", "fold_accuracy": {"0": 0.97, "1": 0.96}},
        {
            "variant": "r2",
            "command": f"{cmd} --optimizer=rprop --x",
            "fold_accuracy": {"0": 0.975},
        },  # fewer folds
        {
            "variant": "r3",
            "command": f"{cmd} --optimizer=rprop --y",
            "fold_accuracy": {"0": 0.96, "1": 0.965},
        },
        {
            "variant": "bn",
            "command": f"{cmd} --batch-norm",
            "fold_accuracy": {"0": 0.995, "4": 0.99},
        },  # 4: no ref
        {
            "variant": "r1+r3",
            "command": f"{ens} --levers=r1,r3 --raw",
            "fold_accuracy": {"0": 0.98, "1": 0.975},
        },
        {
            "variant": "ref+r1",
            "command": f"{ens} --levers=ref,r1",  # mixed: no row
            "fold_accuracy": {"0": 0.999, "1": 0.999},
        },
    ]
    lines = docs.variant_table({"tables": {"t": {"rows": rows}}}, "t", "ref").splitlines()
    assert lines[4] == "| baseline | 98.50 % (the reference on folds 0,1; `ref`) | not measured yet |"
    assert lines[5] == "| batch norm | not measured yet | not measured yet |"
    assert lines[6] == "| SGD | not measured yet | not measured yet |"
    assert (
        lines[7] == "| Rprop | 96.50 % (-2.00 on folds 0,1; `r1`) | 97.75 % (-0.75 on folds 0,1; `r1+r3`) |"
    )
    assert len(lines) == 8
    # a recipe run with two seeds scores their mean on each fold, not the better seed's run; a one-lever
    # --raw row pools with the --raw row of the same recipe's other seed, apart from the runs' own rows
    rows += [
        {
            "variant": "r1_seed1",
            "command": f"{cmd} --optimizer=rprop --seed=1",
            "fold_accuracy": {"0": 0.99, "1": 0.98},
        },
        {"variant": "r1_raw", "command": f"{ens} --levers=r1 --raw", "fold_accuracy": {"0": 0.96, "1": 0.95}},
        {
            "variant": "r1_seed1_raw",
            "command": f"{ens} --levers=r1_seed1 --raw",
            "fold_accuracy": {"0": 0.98, "1": 0.99},
        },
    ]
    lines = docs.variant_table({"tables": {"t": {"rows": rows}}}, "t", "ref").splitlines()
    assert lines[7].startswith("| Rprop | 97.50 % (-1.00 on folds 0,1; `r1`, seeds 0,1) |")
    rows[-2]["fold_accuracy"] = {"0": 0.99, "1": 0.97}  # r1_seed1_raw alone would be 98.50, the reference's
    lines = docs.variant_table({"tables": {"t": {"rows": rows}}}, "t", "ref").splitlines()
    assert lines[7].startswith("| Rprop | 98.25 % (-0.25 on folds 0,1; `r1_raw`, seeds 0,1) |")
    rows.append({"variant": "ref_s1", "command": f"{cmd} --seed=1", "fold_accuracy": {"0": 0.97, "1": 0.96}})
    lines = docs.variant_table({"tables": {"t": {"rows": rows}}}, "t", "ref").splitlines()
    assert lines[4].startswith(
        "| baseline | 97.50 % (-1.00 on folds 0,1; `ref`, seeds 0,1) |"
    )  # not "the reference"
    assert "not recorded yet" in docs.variant_table({"tables": {"t": {"rows": rows}}}, "t", "other")

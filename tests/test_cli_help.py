"""Every CLI's --help: each option shows its real default and its choices, and off-by-default switches have
no --no- form."""

import dataclasses
import re
import typing

import pytest

from benchmarks import conv_layers, step_time, time_to_accuracy
from experiments import cnn, sweep, unet
from experiments.cli import RUN_FOLDER, RunFolderFlags, parser_for

CLIS = [
    (cnn.main, cnn.CNNConfig),
    (unet.main, unet.UNetConfig),
    (sweep.main, sweep.SweepConfig),
    (step_time.parse_args, step_time.StepTimeConfig),
    (conv_layers.parse_args, conv_layers.ConvLayersConfig),
    (time_to_accuracy.parse_args, time_to_accuracy.TimeToAccuracyConfig),
]


def _help_entries(entry_point, capsys, monkeypatch) -> dict[str, str]:
    """--help's options, one whitespace-normalised entry (flags, then help) per option, by first flag."""
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: argparse would break lines at hyphens
    with pytest.raises(SystemExit) as info:
        entry_point(["--help"])
    assert info.value.code == 0
    options = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    options = "\n".join(line for line in options.splitlines() if line.startswith(" "))  # no group titles
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", options)]
    return {e.split()[0].rstrip(","): e for e in entries}


@pytest.mark.parametrize("entry_point,cls", CLIS, ids=lambda v: getattr(v, "__name__", ""))
def test_help_shows_each_options_default_and_choices(entry_point, cls, capsys, monkeypatch):
    """Each field's entry reads `--flag {choices}|METAVAR  help (default: D)`, D being the value the
    parser gives when the flag is left out (or what the field says it means: the recipe's value, an
    environment variable...); an off-by-default switch shows no default."""
    entries = _help_entries(entry_point, capsys, monkeypatch)
    defaults, types = vars(parser_for(cls, "").parse_args([])), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        entry = entries.pop(flag, None)
        assert entry is not None, f"{flag} is missing from {cls.__name__}'s --help"
        choices, shown = f.metadata["choices"], f.metadata["shown"]
        assert defaults[f.name] == f.default, flag  # the parser's default is the config's
        if f.default is False:
            assert entry == f"{flag} {f.metadata['help']}", entry  # a switch: on when given
            continue
        if bool in (types[f.name], *typing.get_args(types[f.name])):
            head = f"{flag}, --no-{flag[2:]}"
        elif choices:
            assert f.default is None or f.default in choices, flag
            head = f"{flag} {{{','.join(map(str, choices))}}}"
        else:
            head = f"{flag} {f.name.upper()}"
        shown = shown or ("from the recipe" if f.default is None else str(f.default))
        assert entry == f"{head} {f.metadata['help']} (default: {shown})", entry
    assert set(entries) == {"-h"}, f"options with no config field: {sorted(entries)}"


def _recipe_keys(module) -> set[str]:
    recipe = next(iter(module.RECIPES.values()))
    recipe = next(iter(recipe.values())) if isinstance(recipe, dict) else recipe
    return {f.name for f in dataclasses.fields(recipe)}


@pytest.mark.parametrize("module,cls", [(cnn, cnn.CNNConfig), (unet, unet.UNetConfig)])
def test_only_recipe_options_say_from_the_recipe(module, cls):
    keys = _recipe_keys(module)
    for f in dataclasses.fields(cls):
        if f.default is None and not f.metadata.get("shown"):
            assert f.name in keys, f"--{f.name} says 'from the recipe' but no recipe sets it"
    text = " ".join(parser_for(cls, "").format_help().split())
    for phrase in (
        "trials per variant",
        "data-parallel over the first N devices",
        "re-evaluate with --eval-only",
    ):
        shown = re.search(re.escape(phrase) + r" \(default: ([^)]*)\)", text)
        assert shown and "from the recipe" not in shown.group(1), phrase


@pytest.mark.parametrize("main", [cnn.main, unet.main])
def test_off_switches_have_no_negation(main, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for flag in ("--no-grid", "--no-eval-only", "--no-overwrite", "--no-resume"):
        assert flag not in out
    assert "--no-augment" in out and "--grid" in out and "--eval-only" in out


def test_an_off_switch_still_parses():
    from experiments.cli import parse

    assert parse(unet.UNetConfig, ["--grid", "--tta"], "").grid is True
    assert parse(unet.UNetConfig, [], "").grid is False
    assert parse(cnn.CNNConfig, ["--no-tta"], "").tta is False  # a recipe option can be turned off


@pytest.mark.parametrize("cls", [unet.UNetConfig, cnn.CNNConfig])
def test_argv_for_gives_flags_the_parser_reads_back(cls):
    from experiments.cli import argv_for, parse

    default = cls()
    changed = {"seed": 3, "out": "runs/x", "augment": False, "cv_folds": 5, "cv_fold": 2, "lr": 5e-4}
    assert argv_for(cls, dataclasses.asdict(default)) == []
    argv = argv_for(cls, changed)
    assert "--no-augment" in argv and "--seed=3" in argv
    assert parse(cls, argv, "") == dataclasses.replace(default, **changed)
    assert argv_for(cls, changed, against={**changed, "seed": 1}) == ["--seed=3"]


@pytest.mark.parametrize("main", [cnn.main, unet.main])
def test_run_folder_flags_come_last_under_their_own_heading(main, capsys, monkeypatch):
    """Both experiments take the shared run-folder flags (experiments.cli.RunFolderFlags), listed after
    their own options under one heading."""
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["--help"])
    own, shared = capsys.readouterr().out.split(f"\n{RUN_FOLDER}:\n", 1)
    flags = re.findall(r"^  (--[a-z-]+)", shared, re.M)
    assert flags == ["--" + f.name.replace("_", "-") for f in dataclasses.fields(RunFolderFlags)]
    assert not set(flags) & set(re.findall(r"^  (--[a-z-]+)", own, re.M))

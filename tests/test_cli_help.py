"""Both CLIs' --help: every default shown is true, and off-by-default switches have no --no- form."""

import dataclasses
import re

import pytest

from experiments import cnn, unet
from experiments.cli import parser_for


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

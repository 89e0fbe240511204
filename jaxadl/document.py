"""The reproduced report as one document: OUT/report.md (figures in OUT/report_files/) and a self-contained
OUT/report.html, from the CNN and U-Net grids' run folders, with the original report's numbers (jaxadl.seed)
beside the reproduced ones.

The content is built once, as blocks (jaxadl.document_render), and rendered twice, so both files hold the
same tables and figures. Part 1 (jaxadl.document_gtsrb): table 1.4, the loss figures, per-class accuracy,
the confusion matrix, the most-confused pairs, misclassified signs. Part 2 (jaxadl.document_lungs): table
2.1, the history and hardest-case figures, per-case F1, the worst cases, raw against cleaned masks. Then how
the reproduction differs from the original, and the machine, versions, command and commit.

    from jaxadl import document
    document.build("runs/report", {"cnn": "runs/report/cnn", "unet": "runs/report/unet"},
                   {"cnn": cnn_data, "unet": lung_data}, command="python -m experiments.report ...")
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxadl import document_gtsrb, document_lungs, seed
from jaxadl.data.base import Dataset
from jaxadl.document_gtsrb import confusion
from jaxadl.document_render import (
    Block,
    Bullets,
    Code,
    Heading,
    Paragraph,
    Table,
    markdown,
    place_figures,
    table,
    to_html,
)
from jaxadl.document_runs import NO_TEST_SPLIT, Run, load_run
from jaxadl.run_folder import write_whole

__all__ = ["TITLE", "build", "confusion"]

TITLE = "The assignment report, reproduced with jaxadl"


def build(
    out: str | Path,
    runs: Mapping[str, str | Path | None],
    data: Mapping[str, Dataset | None] | None = None,
    *,
    title: str = TITLE,
    command: str | None = None,
    profile_note: str | None = None,
    differences: Sequence[tuple[str, str, str]] = (),
    commit: str | None = None,
) -> tuple[Path, Path]:
    """Write out/report.md (PNGs in out/report_files/) and out/report.html (everything embedded); return both.

    runs: the run folders by grid, "cnn" (table 1.4) and "unet" (table 2.1); a grid left out or unfinished
    is said so in its part. data: the Dataset each grid was scored on (the one it trained with), for the
    confusion matrix, the galleries and the masks; without it those are left out. command and profile_note
    are shown (the note in every table's caption); differences: (aspect, original, this reproduction) rows;
    commit: the code's commit (default: `git rev-parse --short HEAD` of this checkout, when it is one).
    """
    out, data = Path(out), dict(data or {})
    cnn, unet = load_run("cnn", runs.get("cnn")), load_run("unet", runs.get("unet"))
    final = out / "report_files"
    files = out / ".report_files.partial"  # built aside: an interrupted build leaves the last report whole
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    blocks = [
        *_intro(title, command, profile_note, commit if commit is not None else _git_commit()),
        *document_gtsrb.section(cnn, data.get("cnn"), files),
        *document_lungs.section(unet, data.get("unet"), files),
        *_differences(differences, profile_note, [r for r in (cnn, unet) if isinstance(r, Run)]),
        *_environment(cnn, unet, data, command),
    ]
    if profile_note:
        blocks = [_noted(b, profile_note) for b in blocks]
    md_path, html_path = out / "report.md", out / "report.html"
    blocks = place_figures(blocks, files)
    md, html = markdown(blocks, files_url=final.name), to_html(blocks, title)
    if final.exists():  # figures of an earlier build are not left behind
        shutil.rmtree(final)
    files.rename(final)
    write_whole(md_path, md)
    write_whole(html_path, html)
    return md_path, html_path


def _noted(block: Block, note: str) -> Block:
    """A table with the profile note at the end of its caption."""
    if not isinstance(block, Table):
        return block
    return dataclasses.replace(block, caption=f"{block.caption.rstrip()} {note[:1].upper()}{note[1:]}.")


def _git_commit() -> str | None:
    """This checkout's short commit, when jaxadl runs from a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _intro(title: str, command: str | None, profile_note: str | None, commit: str | None) -> list[Block]:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list[Block] = [
        Heading(title, 1),
        Paragraph(
            "This document reproduces the assignment report behind jaxadl: a small CNN for German traffic "
            "signs (GTSRB, part 1) and a U-Net for lung fields in chest X-rays (JSRT, part 2), each with its "
            "variants and repeated trials. Every table sets the original's numbers (from jaxadl.seed: "
            f"{seed.SOURCE}) beside the reproduced ones; every figure names the original figure it corresponds "
            "to. The last sections say how this reproduction differs from the original and what it ran on."
        ),
        Paragraph(
            f"Written {when}"
            + (f" from commit `{commit}`" if commit else "")
            + (f"; {profile_note}." if profile_note else ".")
        ),  # fmt: skip
    ]
    if command:
        blocks += [Paragraph("Reproduce it with:"), Code(command)]
    return blocks


def _differences(
    rows: Sequence[tuple[str, str, str]], profile_note: str | None, runs: list[Run]
) -> list[Block]:
    blocks: list[Block] = [
        Heading("How this differs from the original"),
        Paragraph(
            "The original's code listings contain slips; its prose and the model it prints (section 1.1.1) are "
            "the intended design, which jaxadl builds:"
        ),
        Bullets(seed.LISTING_SLIPS),
    ]
    if rows:
        blocks.append(table("Recipe values that differ from the original's.", ["aspect", "original report", "this reproduction"], rows))  # fmt: skip
    notes = [profile_note] if profile_note else []
    notes += [f"the {r.grid.upper() if r.grid == 'cnn' else 'U-Net'} grid was scored on {NO_TEST_SPLIT}" for r in runs if r.split != "test"]  # fmt: skip
    if notes:
        blocks.append(Bullets(tuple(notes)))
    return blocks


def _environment(cnn: Run | str, unet: Run | str, data: dict[str, Any], command: str | None) -> list[Block]:
    """Machine, device, versions and the data of each grid, side by side."""
    runs = {"CNN": cnn, "U-Net": unet}
    env = {k: r.results.get("environment") or {} if isinstance(r, Run) else {} for k, r in runs.items()}
    items: list[tuple[str, Any]] = [
        ("run folder", lambda r, e, d: f"`{r.folder.root}`"),
        ("dataset", lambda r, e, d: r.results.get("dataset", "—")),
        ("images: train / val / test", lambda r, e, d: _sizes(d)),
        ("scored split", lambda r, e, d: r.split),
        ("recipe", lambda r, e, d: r.recipe),
        ("trials finished", lambda r, e, d: sum(not t.get("failed") for t in r.trials)),
        ("machine", lambda r, e, d: e.get("platform", "—")),
        ("device", lambda r, e, d: f"{e.get('device', '—')} ({e.get('backend', '—')}), {e.get('device_count', '—')} device(s)"),
        ("python", lambda r, e, d: e.get("python", "—")),
        ("XLA flags", lambda r, e, d: f"`{e['xla_flags']}`" if e.get("xla_flags") else "—"),
    ]  # fmt: skip
    versions = sorted({k for e in env.values() for k in (e.get("versions") or {})})
    rows = []
    for name, cell in items:
        rows.append(
            [
                name,
                *(_cell(cell, r, env[k], data.get("cnn" if k == "CNN" else "unet")) for k, r in runs.items()),
            ]
        )
    for v in versions:
        rows.append([v, *((env[k].get("versions") or {}).get(v) or "—" if isinstance(runs[k], Run) else "—" for k in runs)])  # fmt: skip
    blocks: list[Block] = [
        Heading("Machine, versions and command"),
        table("Where each grid ran, from its results.json and config.json.", ["", *runs], rows),
    ]
    if command:
        blocks += [Paragraph("Command line:"), Code(command)]
    return blocks


def _cell(cell: Any, run: Run | str, env: dict[str, Any], data: Dataset | None) -> str:
    return str(cell(run, env, data)) if isinstance(run, Run) else "not run"


def _sizes(data: Dataset | None) -> str:
    if data is None:
        return "—"
    return " / ".join(str(len(s)) if s is not None else "—" for s in (data.train, data.val, data.test))

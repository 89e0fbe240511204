"""Per-module summary of a mutmut run (tools/mutation.sh): mutants, killed, survived, survival rate, and
each survivor with its line and mutation. Usage: python tools/mutation_summary.py SCRATCH [GLOB ...]"""

from __future__ import annotations

import ast
import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code


def _diff(source: str, mutant_source: str, key: str) -> str:
    """`line: original  ->  mutated` for one mutant: the first line of its function that it changes."""
    fn = key.rsplit(".", 1)[1]  # x_name__mutmut_3 or xǁClassǁname__mutmut_3
    orig = _function(mutant_source, fn.rsplit("__mutmut_", 1)[0] + "__mutmut_orig")
    mutated = _function(mutant_source, fn)
    start = _source_line(source, fn.rsplit("__mutmut_", 1)[0])
    for i, (a, b) in enumerate(zip(orig, mutated, strict=False)):
        if a != b:
            return f"{start + i}: {a.strip()}  ->  {b.strip()}"
    return f"{start}: (lines removed)"


def _function(text: str, name: str) -> list[str]:
    """The lines of function `name` in the mutated module, its name dropped from the `def` line."""
    node = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = text.splitlines()[node.lineno - 1 : node.end_lineno]
    return [lines[0].replace(name, "", 1), *lines[1:]]


def _source_line(source: str, mangled: str) -> int:
    """The line of the original function's `def` (x_name, or xǁClassǁname for a method)."""
    parts = mangled[1:].split("ǁ")
    cls, name = (parts[1], parts[2]) if len(parts) == 3 else (None, parts[0][1:])
    for node in ast.walk(ast.parse(source)):
        if cls and isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item.lineno
        if not cls and isinstance(node, ast.FunctionDef) and node.name == name and node.col_offset == 0:
            return node.lineno
    return 0


def main(scratch: str, globs: list[str]) -> None:
    root = Path(scratch)
    rows, survivors = [], []
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        source_path = meta.relative_to(root / "mutants").with_suffix("")
        data = json.loads(meta.read_text())
        keys = [k for k in data["exit_code_by_key"] if not globs or any(fnmatch.fnmatch(k, g) for g in globs)]
        if not keys:
            continue
        status = Counter(status_by_exit_code[data["exit_code_by_key"][k]] for k in keys)
        tested = len(keys) - status["not checked"] - status["skipped"]
        left = status["survived"] + status["no tests"]
        rows.append((str(source_path), len(keys), status, left / tested if tested else float("nan")))
        mutated = (root / "mutants" / source_path).read_text()
        source = (root / source_path).read_text()
        for k in keys:
            st = status_by_exit_code[data["exit_code_by_key"][k]]
            if st not in ("killed", "caught by type check"):
                survivors.append(f"{source_path}:{_diff(source, mutated, k)}  [{st}; {k}]")
    print(
        f"{'module':28} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'other':>5} {'survival':>8}"
    )
    total = Counter()
    for path, n, status, rate in rows:
        other = n - status["killed"] - status["survived"] - status["no tests"]
        print(
            f"{path:28} {n:7d} {status['killed']:6d} {status['survived']:8d} {status['no tests']:8d} {other:5d}"
            f" {rate:8.1%}"
        )
        total.update(status)
        total["n"] += n
    left = total["survived"] + total["no tests"]
    print(
        f"{'all':28} {total['n']:7d} {total['killed']:6d} {total['survived']:8d} {total['no tests']:8d}"
        f" {total['n'] - total['killed'] - left:5d} {left / total['n']:8.1%}"
    )
    print("\nsurvivors (survived or no tests):")
    print("\n".join(survivors))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

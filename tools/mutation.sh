#!/usr/bin/env bash
# Mutation campaign (issue #32): mutmut over the modules whose numbers users rely on, each against its fast
# tests ([tool.mutmut] in pyproject.toml). Not run in CI. One command, from the repository root:
#
#   tools/mutation.sh                 # every in-scope function (tools/mutation_scope.txt)
#   tools/mutation.sh 'jaxadl.shapes.*'   # or only the mutants matching these globs
#
# It snapshots the working tree's tracked files (git add a new test file first) into a scratch folder
# ($MUTATION_DIR, default /tmp/jaxadl-mutation), runs mutmut there (which mutates its own copy, mutants/),
# and prints (and keeps in $MUTATION_DIR/summary.txt) the per-module counts and every survivor. The library
# source here is never touched. MUTATION_KEEP=1 keeps the scratch folder's earlier results and reruns only
# the mutants named (e.g. the survivors, after adding tests: adding tests cannot revive a killed mutant).
# Workers: $MUTATION_CHILDREN (default 2). The whole campaign took 51 min on 2 shared CPU cores (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
scratch=${MUTATION_DIR:-/tmp/jaxadl-mutation}
children=${MUTATION_CHILDREN:-2}

[ "${MUTATION_KEEP:-0}" = 1 ] || rm -rf "$scratch"
mkdir -p "$scratch"
git ls-files -z --cached | while IFS= read -r -d '' f; do
  [ -e "$f" ] && printf '%s\0' "$f"  # skip files deleted in the working tree
done | tar --null -T - -cf - | tar -xf - -C "$scratch"

cd "$scratch"
if [ "$#" -gt 0 ]; then
  globs=("$@")
else
  mapfile -t globs < <(grep -v '^\s*#' "$repo/tools/mutation_scope.txt" | grep -v '^\s*$')
fi
if [ "${MUTATION_KEEP:-0}" = 1 ] && [ -f mutants/mutmut-stats.json ]; then
  # a changed test selection makes mutmut forget every verdict; added tests can only add kills, so keep them
  python - <<'PY'
import json

from mutmut.configuration import config

path = "mutants/mutmut-stats.json"
stats = json.load(open(path))
stats["config_fingerprint"]["test_selection"] = config().config_fingerprint()["test_selection"]
json.dump(stats, open(path, "w"))
PY
fi
export JAXADL_HYPOTHESIS_PROFILE=mutation  # tests/test_properties.py: the same examples every run
start=$(date +%s)
# mutmut's exit code is not the verdict; the summary is
python -m mutmut run --max-children "$children" "${globs[@]}" || true
echo "wall time: $(($(date +%s) - start)) s"
python "$repo/tools/mutation_summary.py" "$scratch" "${globs[@]}" | tee "$scratch/summary.txt"

#!/usr/bin/env bash
# Reruns the fault and hostile-input tables and writes docs/fault-table.md from what their rows
# recorded (gpulibs_testkit::faults, GPULIBS_FAULT_LOG): every case, passed or FAILED, and what
# was observed. The doc is therefore what the tests saw on this checkout, not a hand-kept list.
#
# usage: scripts/fault-table.sh           rewrite docs/fault-table.md
#        scripts/fault-table.sh --check   fail when the doc's cases or outcomes differ from a rerun
#                                         (CI runs this; the run's date and commit are not compared)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-write}
doc=docs/fault-table.md

# The suites that keep fault tables: package and test target.
suites=(
  "gpulibs-install faults"
  "gpulibs-install hostile_manifests"
)

log=$(mktemp)
trap 'rm -f "$log" "$log.md"' EXIT
status=0
for s in "${suites[@]}"; do
  set -- $s
  # A failing row fails its test; the table still records it, so go on and publish it.
  GPULIBS_FAULT_LOG=$log cargo test --locked -q -p "$1" --test "$2" >/dev/null 2>&1 || status=1
done
[ -s "$log" ] || { echo "no fault table recorded a row: are the suites above still using gpulibs_testkit::faults?" >&2; exit 1; }

python3 - "$log" "$log.md" <<'PY'
import collections, subprocess, sys, datetime
log, out = sys.argv[1], sys.argv[2]
rows = collections.OrderedDict()
for line in open(log, encoding="utf-8"):
    suite, case, status, observed = (line.rstrip("\n").split("\t") + ["", "", "", ""])[:4]
    rows.setdefault(suite, []).append((case, status, observed))
tried = sum(len(r) for r in rows.values())
passed = sum(1 for r in rows.values() for c in r if c[1] == "passed")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
esc = lambda s: s.replace("|", "\\|")
with open(out, "w", encoding="utf-8") as f:
    f.write("# Fault table\n\n")
    f.write("Every fault and hostile-input case the test tables run, with the outcome each row asserted.\n")
    f.write("Written by `scripts/fault-table.sh` from the rows' own records (`gpulibs_testkit::faults`);\n")
    f.write("CI runs `scripts/fault-table.sh --check`, which fails when a rerun's cases or outcomes differ\n")
    f.write("from this file. Do not edit by hand: change a test, then rerun the script.\n\n")
    f.write(f"<!-- run: {datetime.date.today().isoformat()} at {commit} -->\n\n")
    f.write(f"**{tried} cases tried, {passed} passed.**\n\n")
    f.write("| suite | cases | passed |\n|---|---|---|\n")
    for suite, r in rows.items():
        f.write(f"| {esc(suite)} | {len(r)} | {sum(1 for c in r if c[1] == 'passed')} |\n")
    for suite, r in rows.items():
        f.write(f"\n## {esc(suite)}\n\n| case | outcome | observed |\n|---|---|---|\n")
        for case, status, observed in sorted(r):
            if len(observed) > 300:
                observed = observed[:297] + "..."
            f.write(f"| {esc(case)} | {status} | {esc(observed)} |\n")
PY

if [ "$mode" = "--check" ]; then
  # Compare cases and outcomes, not the run line or the observed text (which names temp paths).
  key() { grep -v '^<!-- run:' "$1" | awk -F' \\| ' '/^\| /{print $1" | "$2; next} {print}'; }
  if ! diff <(key "$doc") <(key "$log.md") >/dev/null; then
    echo "docs/fault-table.md is not what the fault tables record now; run scripts/fault-table.sh and commit it:" >&2
    diff <(key "$doc") <(key "$log.md") >&2 || true
    exit 1
  fi
  echo "fault table current: $(grep -o '^\*\*.*\*\*' "$doc")"
else
  cp "$log.md" "$doc"
  echo "wrote $doc: $(grep -o '^\*\*.*\*\*' "$doc")"
fi
exit $status

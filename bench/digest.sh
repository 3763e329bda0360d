#!/usr/bin/env bash
# Digest benchmark: ours vs the reference Pyzor 1.1.2, same inputs, same run.
#
#   bench/digest.sh [--rounds N] [--mbox-mb MB] [--cli-sample K]
#
# Builds the release example binaries of pyzor-digest (pyzor-digest, digest-bench),
# runs them (everything measured is single-threaded: one core each; PIN=1 pins
# the whole run to core 0 with taskset), and writes the table to
# bench/RESULTS-digest.md. Rates are given by wall time and by CPU time
# (/proc/self/stat), the latter being the steadier figure on a shared machine. The reference venv comes from $PYZOR_REF_VENV
# (default target/ref-venv in this checkout, which scripts/setup-ref-env builds).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${PYZOR_REF_VENV:-$root/target/ref-venv}"
cargo build --release -q -p pyzor-digest --example pyzor-digest --example digest-bench
pin=()
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null; then pin=(taskset -c 0); fi
out="$(mktemp)"
"${pin[@]}" target/release/examples/digest-bench --venv "$venv" --write "$out" "$@"
{
    echo "# Digest benchmark results"
    echo
    echo "Produced by \`bench/digest.sh $*\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) cores (single-threaded workloads; pinned: ${pin[*]:-no})."
    echo "Reference: Pyzor 1.1.2 on $("$venv/bin/python" --version 2>&1)."
    echo "Ours: pyzor-digest release build (\`digest_message\` in-process, and the \`pyzor-digest\` example CLI)."
    echo "Machine load average at the end of the run: $(cut -d' ' -f1-3 /proc/loadavg) (2 shared cores: absolute rates vary with load; the ratios compare runs made back to back)."
    echo
    cat "$out"
} > bench/RESULTS-digest.md
rm -f "$out"
echo "wrote bench/RESULTS-digest.md"

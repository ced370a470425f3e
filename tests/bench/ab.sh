#!/bin/sh
# ab.sh -- two builds of the daemon compared on the benchmark's throughput
# phase, run in turn.
#
#   tests/bench/ab.sh [--runs N] [--events N] BUILD_A BUILD_B
#
# Runs tests/bench/run.sh --events N (default 300,000) --no-rss
# --no-latency --no-hot with one instance, N times (default 5) for each
# build, alternating A, B, A, B... so that both meet the machine in the
# same states, and prints for each run and then for each build (minimum,
# median, mean, maximum): the daemon's CPU per event after start-up, Redis's
# CPU per event, (b') in events/s and jemalloc's allocation requests per
# event ("-" for a build without jemalloc).
#
# DESIGN: on a shared 2-core machine one run's CPU time varies by 10-15%
# between identical runs, more than most changes are worth; one pair of
# runs shows nothing.  Alternating and taking several runs per build is
# what makes a difference of a few percent visible (or shows there is
# none).  The allocation count barely moves between runs and needs no such
# care.  Each build needs `make check TESTS=` done (the bench's programs).
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=5
EVENTS=300000
usage() { echo "usage: $0 [--runs N] [--events N] BUILD_A BUILD_B" >&2; exit 2; }
while [ $# -gt 0 ]; do
        case $1 in
        --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
        --events) [ $# -ge 2 ] || usage; EVENTS=$2; shift 2 ;;
        --*) usage ;;
        *) break ;;
        esac
done
[ $# -eq 2 ] || usage
case $RUNS in '' | *[!0-9]*) echo "$0: --runs: expected a number, got '$RUNS'" >&2; exit 2 ;; esac
case $EVENTS in '' | *[!0-9]*) echo "$0: --events: expected a number, got '$EVENTS'" >&2; exit 2 ;; esac
for b in "$1" "$2"; do
        [ -x "$b/multichanneld" ] || { echo "$0: $b: no multichanneld built there" >&2; exit 2; }
done
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

# one_run LABEL BUILD: one throughput run; appends "LABEL cpu redis b' requests" to $OUT
one_run() {
        table=$(BENCH_GROUP_INSTANCES=1 sh "$SRC/tests/bench/run.sh" --build "$2" --events "$EVENTS" \
                --no-rss --no-latency --no-hot 2> /dev/null) || { echo "$0: the bench failed with $2" >&2; exit 1; }
        echo "$table" | awk -v label="$1" '
                /per event after it\)/ { s = $0; sub(/.*\(/, "", s); sub(/ us\).*/, "", s); cpu = s }
                /^CPU per event: daemon/ { n = split($0, f, " "); redis = f[n - 1] }
                /^\(b.\) daemon after start-up/ { s = $0; sub(/ events\/s.*/, "", s); n = split(s, f, " "); bp = f[n] }
                /^jemalloc, whole run/ { s = $0; sub(/.*\) +/, "", s); split(s, f, " "); req = f[1] }
                END { printf "%s %s %s %s %s\n", label, cpu, redis, bp, req == "" ? "-" : req }' >> "$OUT"
        tail -1 "$OUT"
}

echo "run   daemon_us  redis_us  b'_events/s  requests/event"
i=0
while [ "$i" -lt "$RUNS" ]; do
        one_run A "$1"
        one_run B "$2"
        i=$((i + 1))
done
echo
echo "build  figure        min  median  mean  max"
for label in A B; do
        for col in 2 3 4 5; do
                name=$(echo "daemon_us redis_us b'_events/s requests/event" | cut -d' ' -f$((col - 1)))
                awk -v l="$label" -v c="$col" '$1 == l && $c != "-" { print $c }' "$OUT" | sort -g | awk -v l="$label" -v n="$name" '
                        function f(x) { return sprintf(x >= 1000 ? "%.0f" : "%.2f", x) }
                        { v[NR] = $1; s += $1 }
                        END { if (NR == 0) { printf "%-6s %-14s -\n", l, n; exit }
                              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                              printf "%-6s %-14s %s  %s  %s  %s\n", l, n, f(v[1]), f(m), f(s / NR), f(v[NR]) }'
        done
done
echo "A = $1"
echo "B = $2"

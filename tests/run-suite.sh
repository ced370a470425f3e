#!/bin/sh
# run-suite.sh -- the whole test suite, from a fresh Debian 12 machine:
#   1. set-up (packages, autotools), via tests/setup.sh;
#   2. `make check` built with AddressSanitizer and UBSan;
#   3. `make check` again with the C tests and the daemon under valgrind;
#   4. `make distcheck`.
# Ends with the line "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
status=0

phase() { echo; echo "=== $*"; }

# show_failures LOG: the failed tests of a test-suite.log and their TAP comments.
show_failures() {
	echo "--- failures in $1:"
	grep -E "^(not ok|FAIL|ERROR)" "$1" | head -50
	echo "--- their diagnostics (TAP comments) in $1:"
	grep -E "^# " "$1" | grep -vE "^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):" | cut -c1-300 | head -150
}

phase "set-up and sanitizer build"
sh tests/setup.sh _build/asan --enable-sanitizers || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
phase "make check (ASan + UBSan)"
export MCD_FUZZ_SECONDS=60      # each fuzzer, this phase; shorter in the later ones
(cd _build/asan && make -j2 check) || status=1

phase "make check under valgrind"
sh tests/setup.sh _build/valgrind --without-jemalloc >/dev/null || status=1   # memcheck follows glibc's malloc
unset ASAN_OPTIONS UBSAN_OPTIONS
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --num-callers=40 --suppressions=$top/tests/valgrind.supp"
# Smaller streams under valgrind, which runs the daemon some 20 times slower.
export MCD_HOT_EVENTS=3000 MCD_HOT_SEEN_IDS=1000
export MCD_CRASH_EVENTS=800 MCD_CRASH_KILLS=3 MCD_LOSS_EVENTS=1500 MCD_GROUP_EVENTS=1500 MCD_ZOMBIE_EVENTS=800 \
	MCD_LAG_EVENTS=1000 MCD_ROLLBACK_EVENTS=600 MCD_SENTINEL_EVENTS=1200 MCD_GROUP_OFFSETS_EVENTS=3000 \
	MCD_ROLLBACK_GROUP_EVENTS=1000 MCD_PUSH_ENOMEM_EVENTS=800 MCD_ROLLBACK_TIMERS_LEAD_MS=45000 \
	MCD_ROLLBACK_SKEW_LEAD_MS=45000 MCD_ROLLBACK_SKEW_SECONDS=120
export MCD_FUZZ_SECONDS=5
# daemon_due_burst.sh's feed must outlast a due scan's second: smaller only
# here, where the daemon is slower (not exported: distcheck runs at speed).
(cd _build/valgrind && MCD_DUE_BURST_FEED=3000 MCD_DUE_BURST_LEAD_MS=60000 \
	make -j2 check LOG_COMPILER="$VG" MCD_WRAPPER="$VG") || status=1

phase "make distcheck"
(cd _build/valgrind && make -j2 distcheck) > _build/distcheck.log 2>&1
dc=$?
tail -5 _build/distcheck.log
if [ $dc -ne 0 ]; then
	# distcheck's own build keeps its test logs when it fails: name the failures.
	for log in _build/valgrind/multichanneld-*/_build/sub/test-suite.log; do
		[ -f "$log" ] || continue
		show_failures "$log"
	done
fi

pass=0; fail=0; skip=0
for log in _build/asan/test-suite.log _build/valgrind/test-suite.log; do
        [ -f "$log" ] || { fail=$((fail + 1)); continue; }
        p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
        f=$(sed -n 's/^# \(FAIL\|ERROR\|XPASS\): *//p' "$log" | awk '{s+=$1} END {print s+0}')
        s=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
        pass=$((pass + ${p:-0})); fail=$((fail + f)); skip=$((skip + ${s:-0}))
        if [ "$f" -ne 0 ]; then
                show_failures "$log"
        fi
done
if [ $dc -eq 0 ]; then pass=$((pass + 1)); echo "ok - make distcheck"; else fail=$((fail + 1)); echo "not ok - make distcheck"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ $status -eq 0 ]

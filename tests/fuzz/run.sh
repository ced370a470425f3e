#!/bin/sh
# run.sh -- builds the libFuzzer targets of tests/fuzz/ with clang
# (AddressSanitizer + UBSan), replays every saved regression input, then runs
# each fuzzer for a bounded time on a copy of its seed corpus.  Prints TAP.
#
# usage: tests/fuzz/run.sh [BUILDDIR]       (default: a new temporary directory)
#
# Environment:
#   MCD_FUZZ_SECONDS   time per fuzzer (default 60), passed as -max_total_time
#   MCD_FUZZ_TARGETS   which fuzzers to run (default: all four)
#   MCD_FUZZ_CC        the compiler (default clang; must support -fsanitize=fuzzer)
#
# The project sources the fuzzers need are compiled straight from the source
# tree (not through configure), with coverage instrumentation, into
# BUILDDIR/libmcdfuzz.a: the files Makefile.am lists in libmcdrules_a_SOURCES
# (the rules engine) and MCD_CODEC_SOURCES (the codecs and what they use: Avro,
# JSON lines, the stored state, outbox frames, configuration, log), read from
# it at build time, the embedded schemas (schemas/embed.sh) and the outbox's
# dictionaries (schemas/embed_dicts.sh).  Each fuzzer
# links what it calls:
#   fuzz_avro    events and outcomes through the Avro codec (no registry is
#                configured: Confluent-framed input is UNKNOWN_SCHEMA), outbox
#                elements (zipped frames unzipped, as a store reads them)
#   fuzz_jsonl   the replay format's lines
#   fuzz_state   a customer's stored state, binary and JSON
#   fuzz_replay  whole replays through the rules
# BUILDDIR/make_seeds regenerates the seed corpus (see make_seeds.c):
#   BUILDDIR/make_seeds tests/scenarios tests/fuzz/corpus
#
# Regression inputs are the files under tests/fuzz/regressions/<target>/; each
# is run once through its fuzzer before any fuzzing, so a crash found once
# stays fixed.  A crash (or leak, timeout, out-of-memory) found while fuzzing
# is copied there, and the test fails.
set -u

fuzz_src=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$fuzz_src/../.." && pwd)
B=${1:-}
[ -n "$B" ] || B=$(mktemp -d "${TMPDIR:-/tmp}/mcd-fuzz.XXXXXX")
mkdir -p "$B" && B=$(cd "$B" && pwd)
secs=${MCD_FUZZ_SECONDS:-60}
CC=${MCD_FUZZ_CC:-clang}
TARGETS=${MCD_FUZZ_TARGETS:-fuzz_avro fuzz_jsonl fuzz_replay fuzz_state}

# The TAP helpers (ok, diag, tap_done) of tests/lib.sh, and nothing else.
MCD_TAP_ONLY=1
. "$top/tests/lib.sh"

# ------------------------------------------------------------------ build --
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -I$top $(pkg-config --cflags jansson avro-c libcurl libzstd 2>/dev/null)"
LIBS=$(pkg-config --libs jansson avro-c libcurl libzstd 2>/dev/null) || LIBS="-ljansson -lavro -lcurl -lzstd -lpthread"
WARN="-Wall -Wextra -Wno-unused-parameter"
OWN_WARN="$WARN -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
# The rules engine and the codecs, as Makefile.am lists them: a file added
# there is built here too.
am_sources() {  # am_sources VAR: the .c files of Makefile.am's (continued) VAR
        sed -n "/^$1 = /,/[^\\\\]\$/p" "$top/Makefile.am" | tr ' \t\\' '\n\n\n' | grep '\.c$'
}
PROJECT_SRC=$(am_sources libmcdrules_a_SOURCES; am_sources MCD_CODEC_SOURCES)

build() {
        command -v "$CC" > /dev/null || { echo "$CC not found (tests/setup.sh installs clang)"; return 1; }
        mkdir -p "$B/obj/handlers" "$B/obj/daemon" || return 1
        sh "$top/schemas/embed.sh" "$B/obj/daemon/schemas_embedded.c" "$top"/schemas/*.avsc || return 1
        sh "$top/schemas/embed_dicts.sh" "$B/obj/daemon/outbox_dicts.c" "$top"/schemas/outbox-frames.*.zdict || return 1
        objs=""
        fail=0
        set --
        for src in $PROJECT_SRC obj/daemon/schemas_embedded.c obj/daemon/outbox_dicts.c; do
                case $src in
                obj/*) in=$B/$src; o=$B/${src%.c}.o ;;
                *) in=$top/$src; o=$B/obj/${src%.c}.o ;;
                esac
                $CC $CFLAGS $WARN -fsanitize=fuzzer-no-link $SAN -c "$in" -o "$o" &
                set -- "$@" $!
                objs="$objs $o"
                if [ $# -ge 2 ]; then   # two at a time: the machine is shared
                        for p; do wait "$p" || fail=1; done
                        set --
                fi
        done
        for p; do wait "$p" || fail=1; done
        [ $fail -eq 0 ] || return 1
        rm -f "$B/libmcdfuzz.a"
        ar rcs "$B/libmcdfuzz.a" $objs || return 1
        for t in fuzz_avro fuzz_jsonl fuzz_replay fuzz_state; do
                $CC $CFLAGS $OWN_WARN -fsanitize=fuzzer $SAN "$fuzz_src/$t.c" "$B/libmcdfuzz.a" $LIBS \
                        -o "$B/$t" || return 1
        done
        $CC $CFLAGS $OWN_WARN $SAN "$fuzz_src/make_seeds.c" "$top/tests/samples.c" "$B/libmcdfuzz.a" $LIBS \
                -o "$B/make_seeds"
}
build > "$B/build.log" 2>&1
rc=$?
ok $rc "fuzzers built with $CC into $B"
if [ $rc -ne 0 ]; then
        tail -40 "$B/build.log" | diag
        tap_done
        exit $?
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

# The report of a failed fuzzer run: the sanitizer's or the invariant's
# message with its stack.
show_failure() {  # show_failure LOG
        grep -n -E "ERROR: |SUMMARY: |invariant broken|runtime error|==[0-9]+==|^    #[0-9]+ " "$1" | head -60 | diag
}

# ------------------------------------------------------------ regressions --
regressions_pass=""
for t in $TARGETS; do
        set --
        if [ -d "$fuzz_src/regressions/$t" ]; then
                for f in "$fuzz_src/regressions/$t"/*; do
                        [ -f "$f" ] && set -- "$@" "$f"
                done
        fi
        if [ $# -eq 0 ]; then
                ok 0 "$t: no regression inputs"
                continue
        fi
        "$B/$t" -rss_limit_mb=2048 -timeout=60 "$@" > "$B/$t.regressions.log" 2>&1
        rc=$?
        ok $rc "$t: $# regression input(s) replayed"
        if [ $rc -eq 0 ]; then
                regressions_pass="$regressions_pass $t"
        else
                show_failure "$B/$t.regressions.log"
        fi
done

# Saves a new crash input under regressions/, unless it is one already there.
save_artifact() {  # save_artifact TARGET FILE
        for r in "$fuzz_src/regressions/$1"/*; do
                if [ -f "$r" ] && cmp -s "$r" "$2"; then
                        echo "the regression input $r again" | diag
                        return 0
                fi
        done
        if mkdir -p "$fuzz_src/regressions/$1" 2>/dev/null && cp "$2" "$fuzz_src/regressions/$1/" 2>/dev/null; then
                echo "saved $fuzz_src/regressions/$1/$(basename "$2")" | diag
        else
                echo "could not save $2 under $fuzz_src/regressions/$1/" | diag
        fi
}

# ---------------------------------------------------------------- fuzzing --
for t in $TARGETS; do
        work=$B/run/$t
        rm -rf "$work"
        mkdir -p "$work/corpus" "$work/artifacts"
        cp "$fuzz_src/corpus/$t"/* "$work/corpus/" 2>/dev/null
        # fixed regression inputs are seeds too; failing ones would stop the run at once
        case " $regressions_pass " in
        *" $t "*) cp "$fuzz_src/regressions/$t"/* "$work/corpus/" 2>/dev/null ;;
        esac
        n_seeds=$(ls "$work/corpus" | wc -l)
        start=$(date +%s)
        (cd "$work" && "$B/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
                -artifact_prefix="$work/artifacts/" "$work/corpus" > "$work/log" 2>&1)
        rc=$?
        took=$(( $(date +%s) - start ))
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
        [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]]*DONE.*/\1/p' "$work/log" | tail -1)
        [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$work/log" | tail -1)
        crashes=0
        for a in "$work/artifacts"/*; do
                [ -f "$a" ] || continue
                crashes=$((crashes + 1))
                save_artifact "$t" "$a"
        done
        [ $rc -eq 0 ] && [ $crashes -eq 0 ]
        ok $? "$t: ${runs:-0} runs in $took s from $n_seeds seeds, $crashes crashes"
        if [ $rc -ne 0 ] || [ $crashes -ne 0 ]; then
                show_failure "$work/log"
        fi
done
tap_done

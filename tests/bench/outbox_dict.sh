#!/bin/sh
# outbox_dict.sh -- trains the outbox's zstd dictionary (frame_zip.h) on the
# frames of a benchmark run, and writes it where the build embeds it.
#
#   tests/bench/outbox_dict.sh [--build DIR] --out schemas/outbox-frames.<N>.zdict
#
# Runs the throughput phase of tests/bench/run.sh (300,000 events of
# tests/gen_events' default mix over 100,000 customers) with the frames
# written as they are (redis.outbox_compression = none) and Redis's AOF
# never rewritten, reads one frame in four back from the AOF
# (tests/bench/aof_frames), and trains an 8 KiB dictionary on them with the
# id 1835229184 + N (0x6d636000 + N, in the range zstd leaves to private
# use, 32768 to 2^31 - 1): `zstd --train` (Debian's zstd).  A dictionary
# once shipped is never replaced, since frames in outboxes name it: an
# existing OUT is refused.  A new one is another file (the next N, a new
# id), listed last in Makefile.am's DICT_SRC, with MCD_N_OUTBOX_DICTS
# raised.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/_build/bench
OUT=
while [ $# -gt 0 ]; do
        case $1 in
        --build) BUILD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: $0 [--build DIR] --out schemas/outbox-frames.<N>.zdict" >&2; exit 2 ;;
        esac
done
[ -n "$OUT" ] || { echo "usage: $0 [--build DIR] --out schemas/outbox-frames.<N>.zdict" >&2; exit 2; }
[ ! -e "$OUT" ] || { echo "outbox_dict.sh: $OUT exists: a shipped dictionary is never replaced" >&2; exit 2; }
command -v zstd > /dev/null || { echo "outbox_dict.sh: zstd is not installed (apt-get install zstd)" >&2; exit 1; }
LOG=$(mktemp)
BENCH_KEEP=1 BENCH_GROUP_INSTANCES=1 BENCH_EXTRA_CONF="redis.outbox_compression = none" \
        BENCH_REDIS_ARGS="--auto-aof-rewrite-percentage 0" \
        sh "$SRC/tests/bench/run.sh" --build "$BUILD" --events 300000 --no-rss --no-latency --no-hot > "$LOG" 2>&1 ||
        { cat "$LOG" >&2; exit 1; }
WORK=$(sed -n 's/.* kept \(\/.*mcd-bench\.[^ ]*\).*/\1/p' "$LOG" | tail -1)
rm -f "$LOG"
[ -d "$WORK" ] || { echo "outbox_dict.sh: the benchmark kept no work directory" >&2; exit 1; }
# AOF rewrites off: every command of the run is in the one incremental file
mkdir "$WORK/train"
aof=$(ls -S "$WORK"/throughput/redis/appendonlydir/*.incr.aof | head -1)
n=$("$BUILD/tests/bench/aof_frames" -e 4 "$aof" "$WORK/train") || exit 1
echo "training on $n frames"
n_dict=$(basename "$OUT" | sed -n 's/^outbox-frames\.\([0-9][0-9]*\)\.zdict$/\1/p')
[ -n "$n_dict" ] || { echo "outbox_dict.sh: $OUT: expected outbox-frames.<N>.zdict" >&2; exit 2; }
zstd --train -q -r "$WORK/train" --maxdict=8192 --dictID=$((1835229184 + n_dict)) -o "$OUT"
rm -rf "$WORK"
echo "wrote $OUT"

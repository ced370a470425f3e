#!/bin/sh
# run.sh -- the benchmark of multichanneld (issue 6) and its soak run (issue 4).
#
#   tests/bench/run.sh [--events N] [--build DIR] [--rss-events N] [--no-rss]
#                      [--no-latency] [--no-throughput] [--latency-seconds S]
#                      [--latency-rate R]
#   tests/bench/run.sh --soak [MINUTES] [--soak-rate R] [--build DIR]
#
# Builds an optimised, non-sanitised tree in _build/bench (unless --build names
# one), then, each phase against a fresh redis-server (AOF on, appendfsync
# everysec) and a fresh mock cluster with 64 partitions:
#   1. throughput: N events (default 1,000,000) over 100,000 customers from
#      tests/gen_events (its default mix) published with `multichanneld
#      publish`; (a) the raw ceiling: kcat reading both input topics from the
#      beginning to their end, one after the other (the times are summed);
#      (b) the daemon from its start until multichanneld_events_total (plus
#      dead letters) reaches N on /metrics and the last batch is committed
#      (its own time: multichanneld_last_batch_timestamp_seconds); of which
#      start-up: from the start to every partition claimed
#      (multichanneld_ready), and to the first batch
#      committed (issue 12's target: 4 s, of which the mock's initial
#      rebalance delay is 3 s).  Redis commands per event (INFO
#      total_commands_processed delta / N), Redis round trips per batch
#      (metrics), the daemon's peak RSS (VmHWM) and CPU time, and, when it
#      is linked with jemalloc, jemalloc's allocation requests per event and
#      its purging (its statistics, printed at the daemon's exit).  Then
#      the daemon started again after its clean stop: the time until every
#      partition is claimed, and what the stop left in the outboxes and the
#      owed lists for the claims (tasks.c hand_over).
#   1b. the same through BENCH_GROUP_INSTANCES (2; 1 skips it) daemons in
#      one consumer group: events/s from their start to the last commit.
#   2. latency: the daemon idle and ready, tests/bench/latency.c produces
#      events at 10,000/s for 25 s with occurred_at = Kafka timestamp = send
#      time, and reads the outcome topic: p50/p99 from produce to outcome.
#      Run with the latency settings below, once per count in
#      BENCH_LAT_PARTITIONS ("4 64"; see the comment at the phase).
#   3. peak RSS with 10,000 and with 1,000,000 customers (N events each,
#      --rss-events to change).
#   4. a hot customer (issue 13): BENCH_HOT_EVENTS (40,000) events of one
#      customer (gen_events -H: each the cancellation of a subscription never
#      reported), against the same number spread over 2,000 customers;
#      events/s of each, their ratio (goal: at least 0.5), the daemon's peak
#      RSS and the hot customer's stored state.
# and prints a table.  --soak MINUTES (default 10) instead runs the daemon at
# a steady 2,000 events/s for that long, sampling its RSS every 30 s.
#
# Environment: BENCH_BATCH_MAX (2000), BENCH_MERGE_WAIT (50ms),
# BENCH_BATCH_WAIT (50ms), BENCH_CUSTOMERS (100000), BENCH_PARTITIONS (64),
# BENCH_LAT_MERGE_WAIT (10ms), BENCH_LAT_BATCH_WAIT (5ms), BENCH_LAT_FETCH_WAIT
# (5, ms) for the latency phase, BENCH_LOG_LEVEL (notice; debug logs each batch with the split of its
# time, and the throughput phase prints its mean),
# BENCH_EXTRA_CONF (more configuration lines, e.g. "kafka.fetch.wait.max.ms = 5"),
# BENCH_REDIS_ARGS (more redis-server options, e.g. "--auto-aof-rewrite-percentage 0"),
# BENCH_KEEP=1 keeps the work directory, BENCH_WRAP runs the daemon under a
# command (e.g. "valgrind --tool=massif --massif-out-file=/tmp/massif.out"; the
# daemon is stopped before it, and the CPU, RSS and page faults printed are
# then the wrapper's), BENCH_PERF=1 records
# `perf record -g` of the daemon during the throughput run (perf.data in the
# work directory, which is then kept; BENCH_PERF="--call-graph dwarf" passes
# those options instead).
set -u

SRC=$(cd "$(dirname "$0")/../.." && pwd)
EVENTS=1000000
RSS_EVENTS=
BUILD=
SOAK=
SOAK_RATE=2000
LAT_RATE=10000
LAT_SECS=25
DO_RSS=1
DO_LAT=1
DO_TPUT=1
DO_HOT=1
HOT_EVENTS=${BENCH_HOT_EVENTS:-40000}
CUSTOMERS=${BENCH_CUSTOMERS:-100000}
PARTS=${BENCH_PARTITIONS:-64}
BATCH_MAX=${BENCH_BATCH_MAX:-2000}
MERGE_WAIT=${BENCH_MERGE_WAIT:-50ms}
BATCH_WAIT=${BENCH_BATCH_WAIT:-50ms}
LAT_PARTS=${BENCH_LAT_PARTITIONS:-4 64}
GROUP_INSTANCES=${BENCH_GROUP_INSTANCES:-2}
LAT_MERGE_WAIT=${BENCH_LAT_MERGE_WAIT:-10ms}
LAT_BATCH_WAIT=${BENCH_LAT_BATCH_WAIT:-5ms}
LAT_FETCH_WAIT=${BENCH_LAT_FETCH_WAIT:-5}

usage() {
        sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
}
while [ $# -gt 0 ]; do
        case $1 in
        --events) EVENTS=${2:?}; shift ;;
        --rss-events) RSS_EVENTS=${2:?}; shift ;;
        --build) BUILD=${2:?}; shift ;;
        --no-rss) DO_RSS=0 ;;
        --no-latency) DO_LAT=0 ;;
        --no-throughput) DO_TPUT=0 ;;
        --no-hot) DO_HOT=0 ;;
        --latency-rate) LAT_RATE=${2:?}; shift ;;
        --latency-seconds) LAT_SECS=${2:?}; shift ;;
        --soak-rate) SOAK_RATE=${2:?}; shift ;;
        --soak)
                SOAK=10
                case ${2:-} in [0-9]*) SOAK=$2; shift ;; esac ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown argument '$1'" >&2; usage ;;
        esac
        shift
done
: "${RSS_EVENTS:=$EVENTS}"

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.'"${3:-0}"'f", a / b }'; }

# ---- build -------------------------------------------------------------------
if [ -z "$BUILD" ]; then
        BUILD=$SRC/_build/bench
        mkdir -p "$BUILD"
        if [ ! -f "$BUILD/Makefile" ]; then
                [ -x "$SRC/configure" ] || (cd "$SRC" && autoreconf -fi) || die "autoreconf"
                log "configuring $BUILD (CFLAGS=-O2 -g, no sanitizers)"
                (cd "$BUILD" && "$SRC/configure" CFLAGS="-O2 -g" > configure.log 2>&1) ||
                        die "configure (see $BUILD/configure.log)"
        fi
        log "building"
        (cd "$BUILD" && make -j2 multichanneld tests/gen_events tests/http_get libmcd.a libmcdrules.a > make.log 2>&1) ||
                die "make (see $BUILD/make.log)"
fi
BUILD=$(cd "$BUILD" && pwd)
MCD=$BUILD/multichanneld
GEN=$BUILD/tests/gen_events
HTTP_GET=$BUILD/tests/http_get
LAT=$BUILD/tests/bench/latency
for f in "$MCD" "$GEN" "$HTTP_GET" "$BUILD/libmcd.a" "$BUILD/libmcdrules.a"; do
        [ -e "$f" ] || die "$f is missing from the build directory"
done
command -v kcat > /dev/null || die "kcat is not installed (apt-get install kcat)"
command -v redis-server > /dev/null || die "redis-server is not installed"
mkdir -p "$BUILD/tests/bench"
if [ ! -x "$LAT" ] || [ "$SRC/tests/bench/latency.c" -nt "$LAT" ] || [ "$BUILD/libmcd.a" -nt "$LAT" ]; then
        ${CC:-cc} -std=gnu11 -O2 -g -Wall -I"$SRC" -I"$BUILD" -o "$LAT" "$SRC/tests/bench/latency.c" \
                "$BUILD/libmcd.a" "$BUILD/libmcdrules.a" \
                $(pkg-config --libs rdkafka avro-c jansson hiredis libsystemd libmicrohttpd libcurl) -lpthread -lm ||
                die "cannot build the latency helper"
fi

# ---- services ----------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcd-bench.XXXXXX")
PIDS=""
cleanup() {
        for p in $PIDS; do kill -9 "$p" 2> /dev/null; done
        pkill -9 -f -- "^$MCD run -c $WORK/" 2> /dev/null      # a daemon a BENCH_WRAP left behind
        wait 2> /dev/null
        [ -n "${BENCH_KEEP:-}" ] && log "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2> /dev/null ||
                echo $((20000 + ($$ + $(date +%N | sed 's/^0*//;s/^$/0/')) % 20000))
}
wait_until() {  # wait_until SECONDS COMMAND...
        _deadline=$(($(date +%s) + $1)); shift
        while ! "$@" > /dev/null 2>&1; do
                [ "$(date +%s)" -ge "$_deadline" ] && return 1
                sleep 0.2
        done
}
forget_pid() { PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' '); }
wait_exit() {  # wait_exit PID: until it has exited, 20 s at most
        _i=0
        while kill -0 "$1" 2> /dev/null && [ $_i -lt 100 ]; do sleep 0.2; _i=$((_i + 1)); done
}
stop_pid() {  # stop_pid PID: SIGTERM, then SIGKILL after 20 s
        kill -TERM "$1" 2> /dev/null
        wait_exit "$1"
        kill -KILL "$1" 2> /dev/null
        wait "$1" 2> /dev/null
        forget_pid "$1"
}

services_up() {  # services_up NAME: fresh redis-server and mock cluster; sets REDIS_PORT BOOTSTRAP CONF
        PH=$WORK/$1
        mkdir -p "$PH/redis"
        REDIS_PORT=$(free_port)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
                --latency-monitor-threshold 5 --dir "$PH/redis" --logfile "$PH/redis/log" ${BENCH_REDIS_ARGS:-} &
        REDIS_PID=$!
        PIDS="$PIDS $REDIS_PID"
        wait_until 20 redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start"
        "$MCD" mock-cluster --partitions "$PARTS" > "$PH/bootstrap" 2> "$PH/mock.log" &
        KAFKA_PID=$!
        PIDS="$PIDS $KAFKA_PID"
        wait_until 30 test -s "$PH/bootstrap" || die "mock cluster did not start"
        BOOTSTRAP=$(head -1 "$PH/bootstrap")
        METRICS_PORT=$(free_port)
        CONF=$PH/mcd.conf
        cat > "$CONF" << EOF
kafka.bootstrap.servers = $BOOTSTRAP
kafka.group.id = mcd-bench-$1
redis.port = $REDIS_PORT
batch.max_events = $BATCH_MAX
batch.wait = $BATCH_WAIT
merge_wait = $MERGE_WAIT
metrics.listen = 127.0.0.1:$METRICS_PORT
log.level = ${BENCH_LOG_LEVEL:-notice}
EOF
        [ -n "${BENCH_EXTRA_CONF:-}" ] && printf '%s\n' "$BENCH_EXTRA_CONF" >> "$CONF"
        return 0
}
services_down() {
        stop_pid "$KAFKA_PID"
        stop_pid "$REDIS_PID"
}

metric() {  # metric NAME: the sum of a metric's samples on /metrics (0 when absent)
        "$HTTP_GET" "127.0.0.1:$METRICS_PORT" /metrics 2> /dev/null |
                awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}
metric_dump() { "$HTTP_GET" "127.0.0.1:$METRICS_PORT" /metrics 2> /dev/null; }
applied() {  # events applied or dead-lettered so far
        metric_dump | awk '$1 ~ /^multichanneld_(events|dead_letters)_total/ { s += $NF } END { printf "%.0f\n", s }'
}
daemon_ready() { [ "$(metric multichanneld_ready)" = 1 ]; }
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2> /dev/null; }  # proc_kb PID VmHWM
proc_cpu() {  # user+system CPU seconds of a process
        awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.1f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}
proc_minflt() { awk '{ sub(/.*\) /, ""); print $8 }' "/proc/$1/stat"; }  # minor page faults of a process
redis_info() { redis-cli -p "$REDIS_PORT" info "${2:-all}" | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }
batch_split() {  # batch_split LOG: the mean of the batch log's split of a batch's time, in ms
        sed -n 's/.* us, of which \([0-9]*\) us collecting the next batch, \([0-9]*\) us waiting for the last batch.s delivery, [0-9]* us committing (\([0-9]*\) us to the next batch.s load, \([0-9]*\) us freeing the last and applying the next, \([0-9]*\) us waiting for the transaction after).*/\1 \2 \3 \4 \5/p' "$1" |
                awk '{ for (i = 1; i <= 5; i++) t[i] += $i; n++ }
                     END { if (n) printf "%.1f / %.1f / %.1f / %.1f / %.1f ms (%d batches)\n", t[1] / n / 1000, t[2] / n / 1000, t[3] / n / 1000, t[4] / n / 1000, t[5] / n / 1000, n }'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# jemalloc's own figures, printed by the daemon at its exit (to its log) when
# it is linked with jemalloc (a glibc build ignores the variable): only the
# arenas' summary, its allocation requests and its purging.  Added to the
# caller's MALLOC_CONF, which still applies (settings tried by hand); not
# under BENCH_WRAP, whose own figures stand instead.
ALLOC_STATS=stats_print:true,stats_print_opts:gabldxeh
start_daemon() {  # start_daemon: sets DAEMON_PID
        _mc=${MALLOC_CONF:-}
        [ -z "${BENCH_WRAP:-}" ] && _mc=${_mc:+$_mc,}$ALLOC_STATS
        MALLOC_CONF=$_mc ${BENCH_WRAP:-} "$MCD" run -c "$CONF" > "$PH/daemon.out" 2> "$PH/daemon.log" &
        DAEMON_PID=$!
        PIDS="$PIDS $DAEMON_PID"
}
# The daemon stopped.  Under BENCH_WRAP, DAEMON_PID is the wrapper's: the
# daemon itself is sent SIGTERM first, so that the wrapper ends with it (and
# writes what it measured) rather than being killed and leaving it running.
stop_daemon() {
        [ -n "${BENCH_WRAP:-}" ] && pkill -TERM -f -- "^$MCD run -c $CONF\$" 2> /dev/null && wait_exit "$DAEMON_PID"
        stop_pid "$DAEMON_PID"
}

publish() {  # publish N CUSTOMERS SEED: generate and publish; sets PUB_EVENTS PUB_SECS
        "$GEN" -s "$3" -n "$1" -c "$2" > "$PH/in.jsonl" || die "gen_events"
        PUB_EVENTS=$(wc -l < "$PH/in.jsonl")
        _t0=$(now)
        "$MCD" publish -c "$CONF" "$PH/in.jsonl" 2> "$PH/publish.err" || die "publish (see $PH/publish.err)"
        PUB_SECS=$(fsub "$(now)" "$_t0")
        rm -f "$PH/in.jsonl"
}

batch_time() {  # batch_time BATCHES TIMESTAMP: TIMESTAMP if BATCHES is 1 and it is known, else now
        if [ "$1" = 1 ] && [ "$2" != 0 ]; then echo "$2"; else now; fi
}

# last_commit BATCHES TIMESTAMP: the time of the run's last commit, once every
# event is counted.  An event counts once applied, and the batch applied
# while the one before it committed commits next: polled every 50 ms until
# no batch commits for 150 ms, the last one's own time (the poll's for a
# build older than the metric).
last_commit() {
        _lb=$1; _lt=$2; _quiet=0
        [ "$_lt" = 0 ] && _lt=$(now)
        while [ "$_quiet" -lt 3 ]; do
                sleep 0.05
                set -- $(metric_dump | awk '$1 == "multichanneld_batches_total" { b = $2 }
                        $1 == "multichanneld_last_batch_timestamp_seconds" { t = $2 }
                        END { printf "%d %s\n", b, t ? t : 0 }')
                if [ "${1:-0}" -gt "$_lb" ]; then
                        _lb=$1; _lt=${2:-0}; _quiet=0
                        [ "$_lt" = 0 ] && _lt=$(now)
                else
                        _quiet=$((_quiet + 1))
                fi
        done
        echo "$_lt"
}

run_to_completion() {  # run_to_completion N: starts the daemon, waits for N events; sets RUN_* figures
        _want=$1
        _cmd0=$(redis_info total_commands_processed stats)
        _net_in0=$(redis_info total_net_input_bytes stats)
        _net_out0=$(redis_info total_net_output_bytes stats)
        _mock_cpu0=$(proc_cpu "$KAFKA_PID")
        _load0=$(loadavg)
        _t0=$(now)
        start_daemon
        if [ -n "${PERF:-}" ]; then
                # shellcheck disable=SC2086
                perf record $( [ "$PERF" = 1 ] && echo -g || echo "$PERF") -p "$DAEMON_PID" -o "$WORK/perf.data" > "$WORK/perf.log" 2>&1 &
                PERF_PID=$!
                PIDS="$PIDS $PERF_PID"
        fi
        # One request a poll, read by one awk: the harness is kept off the
        # two cores it measures (polling with a handful of processes every
        # 100 ms took 10-20% of the machine).  Every 20 ms until the first
        # commit (the start-up figures are read to within that), every
        # 250 ms after it: the end is the last batch's own time on /metrics.
        _tready=; _tfirst=; _cpu_ready=; _last=0; _still_ms=0
        while :; do
                kill -0 "$DAEMON_PID" 2> /dev/null || die "the daemon exited (see $PH/daemon.log)"
                _m=$(metric_dump)
                set -- $(echo "$_m" | awk '$1 == "multichanneld_ready" { r = $2 }
                        $1 ~ /^multichanneld_(events|dead_letters)_total/ { n += $NF }
                        $1 == "multichanneld_batches_total" { b = $2 }
                        $1 == "multichanneld_last_batch_timestamp_seconds" { t = $2 }
                        END { printf "%d %.0f %d %s\n", r, n, b, t ? t : 0 }')
                _n=${2:-0}
                if [ -z "$_tready" ] && [ "${1:-0}" = 1 ]; then  # every partition claimed: steady state from here
                        _tready=$(now)
                        _cpu_ready=$(proc_cpu "$DAEMON_PID")
                        _n0=$_n
                        _rt0=$(echo "$_m" | awk '$1 == "multichanneld_redis_batch_round_trips_total" { print $2 }')
                        _b0=${3:-0}
                fi
                # The first batch committed and the last: the batch's own time
                # (the first's if it is the only one yet), or the poll's where the
                # daemon does not give it (a build older than the metric).
                [ -z "$_tfirst" ] && [ "$_n" -gt 0 ] && _tfirst=$(batch_time "${3:-0}" "${4:-0}")
                if [ "$_n" -ge "$_want" ]; then _tend=$(last_commit "${3:-0}" "${4:-0}"); break; fi
                if [ "$_n" != "$_last" ]; then _still_ms=0; _last=$_n; fi
                [ "$_still_ms" -ge 60000 ] &&
                        die "no progress for 60 s at $_n of $_want events (see $PH/daemon.log)"
                if [ -n "$_tfirst" ]; then sleep 0.25; _still_ms=$((_still_ms + 250)); else sleep 0.02; _still_ms=$((_still_ms + 20)); fi
        done
        RUN_SECS=$(fsub "$_tend" "$_t0")
        RUN_READY_SECS=$(fsub "${_tready:-$_tend}" "$_t0")
        RUN_FIRST_SECS=$(fsub "${_tfirst:-$_tend}" "$_t0")
        RUN_STEADY_SECS=$(fsub "$_tend" "${_tready:-$_t0}")
        RUN_STEADY_EVENTS=$((_want - ${_n0:-0}))
        RUN_LOAD="$_load0 -> $(loadavg)"
        RUN_HWM=$(proc_kb "$DAEMON_PID" VmHWM)
        RUN_RSS_FILE=$(proc_kb "$DAEMON_PID" RssFile)   # libraries' pages, at the end
        RUN_RSS_ANON=$(proc_kb "$DAEMON_PID" RssAnon)
        RUN_CPU=$(proc_cpu "$DAEMON_PID")
        RUN_MINFLT=$(proc_minflt "$DAEMON_PID")
        RUN_CPU_READY=${_cpu_ready:-$RUN_CPU}
        RUN_REDIS_CPU=$(redis_info used_cpu_user cpu)+$(redis_info used_cpu_sys cpu)
        RUN_REDIS_CPU=$(echo "$RUN_REDIS_CPU" | awk -F+ '{ printf "%.1f", $1 + $2 }')
        RUN_MOCK_CPU=$(fsub "$(proc_cpu "$KAFKA_PID")" "$_mock_cpu0")
        RUN_CMDS=$(($(redis_info total_commands_processed stats) - _cmd0))
        RUN_NET_IN=$(($(redis_info total_net_input_bytes stats) - _net_in0))
        RUN_NET_OUT=$(($(redis_info total_net_output_bytes stats) - _net_out0))
        RUN_RT=$(metric multichanneld_redis_batch_round_trips_total)
        RUN_ALL_RT=$(metric multichanneld_redis_round_trips_total)
        RUN_BATCHES=$(metric multichanneld_batches_total)
        RUN_CACHE_HITS=$(metric multichanneld_state_cache_hits_total)
        RUN_CACHE_MISSES=$(metric multichanneld_state_cache_misses_total)
        RUN_CACHE_BYTES=$(metric multichanneld_state_cache_bytes)
        RUN_WAKEUPS=$(metric multichanneld_fetch_wakeups_total)
        RUN_END_QUERIES="$(metric multichanneld_merge_end_queries_total) / $(metric multichanneld_merge_ends_ahead_total)"
        RUN_STEADY_RT=$((RUN_RT - ${_rt0:-0}))
        RUN_STEADY_BATCHES=$((RUN_BATCHES - ${_b0:-0}))
        RUN_BATCH_MEAN_MS=$(metric_dump | awk '$1 == "multichanneld_batch_duration_seconds_sum" { s = $2 }
                $1 == "multichanneld_batch_duration_seconds_count" { n = $2 } END { if (n) printf "%.1f", s * 1000 / n }')
        RUN_OUTCOMES=$(metric multichanneld_outcomes_total)
        RUN_DLQ=$(metric multichanneld_dead_letters_total)
        RUN_REDIS_MEM=$(redis_info used_memory_human memory)
        RUN_AOF="$(redis_info aof_rewrites persistence) / $(redis_info aof_last_rewrite_time_sec persistence) s"
        redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | grep '^cmdstat_' |
                sed 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),usec=\([0-9]*\),.*/\2 \3 \1/' | sort -k2,2rn | head -10 |
                awk '{ printf "%8d calls %10.1f ms %7.1f us/call  %s\n", $1, $2 / 1000, $1 ? $2 / $1 : 0, $3 }' > "$PH/commandstats"
        metric_dump > "$PH/metrics.txt"
        if [ -n "${PERF:-}" ]; then
                kill -INT "$PERF_PID"; wait "$PERF_PID"; forget_pid "$PERF_PID"
                BENCH_KEEP=1
        fi
        stop_daemon
        RUN_ALLOC=$(alloc_stats "$PH/daemon.log")
}

# The sum of LLEN over the keys matching a pattern.
llen_sum() {
        redis-cli -p "$REDIS_PORT" --scan --pattern "$1" |
                while read -r _k; do redis-cli -p "$REDIS_PORT" llen "$_k"; done | awk '{ s += $1 } END { print s + 0 }'
}

# restart_ready: the daemon started again on the same Redis and topics,
# nothing new to read, until every partition is claimed again (a claim
# reconciles the outbox and appends again what the changelog is owed: what
# the clean stop left of either is said); sets RESTART_SECS, RESTART_LEFT.
restart_ready() {
        RESTART_LEFT="$(llen_sum 'mcd:clog_owed:*') owed changelog elements, $(llen_sum 'mcd:outbox:*') outbox frames"
        mv "$PH/daemon.log" "$PH/daemon.run.log"
        _t0=$(now)
        start_daemon
        until daemon_ready; do
                kill -0 "$DAEMON_PID" 2> /dev/null || die "the restarted daemon exited (see $PH/daemon.log)"
                sleep 0.02
        done
        RESTART_SECS=$(fsub "$(now)" "$_t0")
        stop_daemon
}

# alloc_stats LOG: "REQUESTS MADVISES PAGES" of jemalloc's statistics in the
# daemon's log (all threads', the whole run: allocation requests, purging
# calls, pages purged), or nothing when the log has none.
alloc_stats() {
        awk '/Begin jemalloc statistics/ { on = 1 } !on { next }
                $1 == "total:" && !req { req = $7 } $1 == "dirty:" && !mad { mad = $5; pages = $6 }
                END { if (req != "") print req, mad, pages }' "$1"
}

# How far (b) is from half the ceiling (a), and what holds it.  At 0.5 of (a)
# the run has T = N / (0.5 (a)) seconds; what the start-up leaves of them, on
# 2 cores, is the CPU budget per event, set against the daemon's and Redis's
# CPU per event (over the whole run).  The largest is named; when both fit,
# the waits (round trips, delivery) hold it.
half_ceiling_gap() {
        awk -v n="$N" -v kcat="$KCAT_SECS" -v run="$RUN_SECS" -v ready="$RUN_READY_SECS" \
            -v dcpu="$RUN_CPU" -v rcpu="$RUN_REDIS_CPU" 'BEGIN {
                want = 0.5 * n / kcat; t = n / want; d = dcpu * 1e6 / n; r = rcpu * 1e6 / n
                budget = (t - ready) * 2e6 / n
                if (budget <= 0) what = sprintf("the start-up alone (%.1f s of %.1f s)", ready, t)
                else if (d > budget && d >= r) what = sprintf("the daemon'"'"'s CPU (%.1f us/event)", d)
                else if (r > budget) what = sprintf("Redis'"'"'s CPU (%.1f us/event)", r)
                else what = "waits, not CPU (round trips, delivery)"
                if (budget < 0) budget = 0
                printf "%.1fx faster needed (%.0f events/s, the run in %.1f s): %.1f us of CPU per event after start-up; held by %s\n",
                        want * run / n, want, t, budget, what }'
}
per_event_us() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f", s * 1e6 / n }'; }

TABLE=$WORK/table
row() { printf '%-58s %s\n' "$1" "$2" >> "$TABLE"; }

# ---- soak ---------------------------------------------------------------------
if [ -n "$SOAK" ]; then
        secs=$((SOAK * 60))
        services_up soak
        start_daemon
        wait_until 60 daemon_ready || die "daemon not ready (see $PH/daemon.log)"
        log "soak: $SOAK min at $SOAK_RATE events/s over $CUSTOMERS customers"
        n=$((SOAK_RATE * (secs + 5)))
        "$GEN" -s 4 -n "$n" -c "$CUSTOMERS" -T "$(date +%s%3N)" |
                "$LAT" -b "$BOOTSTRAP" -n "$n" -c "$CUSTOMERS" -r "$SOAK_RATE" -d "$secs" -W 5 -D 5 > "$PH/lat.out" &
        LPID=$!
        PIDS="$PIDS $LPID"
        t0=$(date +%s)
        echo "elapsed_s rss_kib hwm_kib events_applied redis_used_memory" > "$PH/series"
        while kill -0 "$LPID" 2> /dev/null; do
                el=$(($(date +%s) - t0))
                echo "$el $(proc_kb "$DAEMON_PID" VmRSS) $(proc_kb "$DAEMON_PID" VmHWM) $(applied) $(redis_info used_memory_human memory)" >> "$PH/series"
                i=0
                while [ $i -lt 30 ] && kill -0 "$LPID" 2> /dev/null; do sleep 1; i=$((i + 1)); done
        done
        wait "$LPID"; forget_pid "$LPID"
        echo "$(($(date +%s) - t0)) $(proc_kb "$DAEMON_PID" VmRSS) $(proc_kb "$DAEMON_PID" VmHWM) $(applied) $(redis_info used_memory_human memory)" >> "$PH/series"
        kill -0 "$DAEMON_PID" 2> /dev/null || die "the daemon died during the soak (see $PH/daemon.log)"
        echo
        echo "== soak: $SOAK min, $SOAK_RATE events/s, $CUSTOMERS customers, RSS sampled every 30 s =="
        column -t "$PH/series" 2> /dev/null || cat "$PH/series"
        # "first" is the first sample under load (30 s in); the 0 s one is the idle daemon.
        awk 'NR == 2 { idle = $2 } NR > 2 { if (!f) f = $2; l = $2; if ($2 > m) m = $2 }
             END { if (!f) f = l = m = idle
                   printf "RSS idle %d KiB; under load first %d KiB, last %d KiB, max %d KiB, last-first %+d KiB (%+.1f%%)\n",
                          idle, f, l, m, l - f, (l - f) * 100 / f }' "$PH/series"
        awk -F= '/^(sent|rate_achieved|trigger_p50_ms|trigger_p99_ms|direct_p50_ms|direct_p99_ms)=/ { printf "%s=%s  ", $1, $2 } END { print "" }' "$PH/lat.out"
        echo "load average at the end: $(loadavg) (2 cores; other jobs may share them)"
        stop_daemon
        services_down
        exit 0
fi

# ---- 1. throughput -------------------------------------------------------------
if [ "$DO_TPUT" = 1 ]; then
log "throughput: $EVENTS events over $CUSTOMERS customers, $PARTS partitions"
services_up throughput
publish "$EVENTS" "$CUSTOMERS" 1
N=$PUB_EVENTS
log "published $N events in $PUB_SECS s"
ta=$(now)
kcat -C -b "$BOOTSTRAP" -t partnercenter.relationships.v1 -e -q -o beginning > /dev/null || die kcat
tb=$(now)
kcat -C -b "$BOOTSTRAP" -t partnercenter.subscriptions.v1 -e -q -o beginning > /dev/null || die kcat
tc=$(now)
KCAT_REL=$(fsub "$tb" "$ta"); KCAT_SUB=$(fsub "$tc" "$tb"); KCAT_SECS=$(fsub "$tc" "$ta")
n_rel=$(kcat -C -b "$BOOTSTRAP" -t partnercenter.relationships.v1 -e -q -o beginning -f '\n' | wc -l)
n_sub=$(kcat -C -b "$BOOTSTRAP" -t partnercenter.subscriptions.v1 -e -q -o beginning -f '\n' | wc -l)
[ $((n_rel + n_sub)) -eq "$N" ] || die "the topics hold $((n_rel + n_sub)) of $N events (mock cluster truncated them?)"
log "kcat read $n_rel + $n_sub events in $KCAT_REL + $KCAT_SUB s"
PERF=${BENCH_PERF:-}
run_to_completion "$N"
PERF=
log "daemon: $N events in $RUN_SECS s"
row "events published (gen_events default mix)" "$N ($n_rel relationships, $n_sub subscriptions)"
row "customers / partitions" "$CUSTOMERS / $PARTS"
row "publish rate (multichanneld publish)" "$(fdiv "$N" "$PUB_SECS") events/s ($PUB_SECS s)"
row "(a) raw ceiling: kcat -C -e, both topics in turn (summed)" "$(fdiv "$N" "$KCAT_SECS") events/s ($KCAT_SECS s)"
row "(b) daemon, start to last batch committed" "$(fdiv "$N" "$RUN_SECS") events/s ($RUN_SECS s)"
row "ratio (b)/(a)  [target >= 0.5]" "$(fdiv "$KCAT_SECS" "$RUN_SECS" 3)"
row "  of which start-up (start -> every partition claimed)" "$RUN_READY_SECS s"
row "  start -> first batch committed  [target < 4 s]" "$RUN_FIRST_SECS s"
row "(b') daemon after start-up ($RUN_STEADY_EVENTS events)" "$(fdiv "$RUN_STEADY_EVENTS" "$RUN_STEADY_SECS") events/s ($RUN_STEADY_SECS s)"
row "mean batch duration (load+rules+commit+publish)" "$RUN_BATCH_MEAN_MS ms"
[ "${BENCH_LOG_LEVEL:-notice}" = debug ] &&
        row "  of which, per batch (debug log): collecting the next / delivery wait / to the load / freeing the last, applying the next / transaction wait" "$(batch_split "$PH/daemon.log")"
row "CPU time: daemon / redis-server / mock cluster during (b)" "$RUN_CPU s / $RUN_REDIS_CPU s / $RUN_MOCK_CPU s"
row "CPU per event: daemon / redis-server  [goals <= 6 / 1.5 us]" "$(per_event_us "$RUN_CPU" "$N") us / $(per_event_us "$RUN_REDIS_CPU" "$N") us"
row "  daemon CPU in start-up / after it (per event after it)" "$RUN_CPU_READY s / $(fsub "$RUN_CPU" "$RUN_CPU_READY") s ($(per_event_us "$(fsub "$RUN_CPU" "$RUN_CPU_READY")" "$RUN_STEADY_EVENTS") us)"
row "daemon minor page faults, whole run (per event)" "$RUN_MINFLT ($(fdiv "$RUN_MINFLT" "$N" 3))"
if [ -n "$RUN_ALLOC" ]; then
        set -- $RUN_ALLOC
        row "jemalloc, whole run: requests per event / purges (pages)" "$(fdiv "$1" "$N" 1) / $2 ($3 pages, $(fdiv "$(($3 * 4))" 1024 1) MiB)"
fi
row "to (b)/(a) = 0.5" "$(half_ceiling_gap)"
row "batches / events per batch" "$RUN_BATCHES / $(fdiv "$N" "$RUN_BATCHES" 0)"
row "outcomes / dead letters" "$RUN_OUTCOMES / $RUN_DLQ"
row "Redis commands per event" "$(fdiv "$RUN_CMDS" "$N" 4) ($RUN_CMDS commands)"
row "Redis round trips, all (claims, metrics, batches)" "$RUN_ALL_RT"
row "Redis bytes per event: read from clients / replied" "$(fdiv "$RUN_NET_IN" "$N" 0) / $(fdiv "$RUN_NET_OUT" "$N" 0)"
row "input fetchers woken while the merge waited" "$RUN_WAKEUPS"
row "partition ends asked of the broker by the merge / found ahead" "$RUN_END_QUERIES"
if [ "$((RUN_CACHE_HITS + RUN_CACHE_MISSES))" -gt 0 ]; then
        row "state cache: customers found / loaded from Redis" "$RUN_CACHE_HITS / $RUN_CACHE_MISSES ($(fdiv "$RUN_CACHE_HITS" "$((RUN_CACHE_HITS + RUN_CACHE_MISSES))" 2) found), $(fdiv "$RUN_CACHE_BYTES" 1048576 1) MiB held"
else
        row "state cache" "off (cache.max_bytes = 0)"
fi
row "Redis round trips per batch, whole run" "$(fdiv "$RUN_RT" "$RUN_BATCHES" 2) ($RUN_RT / $RUN_BATCHES)"
row "Redis round trips per batch after start-up  [target < 2]" "$(fdiv "$RUN_STEADY_RT" "$RUN_STEADY_BATCHES" 2) ($RUN_STEADY_RT / $RUN_STEADY_BATCHES)"
row "Redis memory after the run" "$RUN_REDIS_MEM"
row "Redis AOF rewrites in the run / the last one took" "$RUN_AOF"
row "daemon peak RSS, $CUSTOMERS customers, $N events" "$(fdiv "$RUN_HWM" 1024 1) MiB"
row "load average during (b) (start -> end)" "$RUN_LOAD"
restart_ready
row "restart after the clean stop: start -> every partition claimed" "$RESTART_SECS s (the stop left $RESTART_LEFT)"
cp "$PH/commandstats" "$WORK/commandstats.throughput"
services_down
fi

# ---- 1b. throughput, several instances in one group -----------------------------
# The same input through GROUP_INSTANCES daemons in one consumer group on this
# machine, as operators scale out: the partitions are split between them.
run_group() {  # run_group N INSTANCES: sets GROUP_SECS GROUP_CPU GROUP_HWM
        _want=$1; _pids=""; _ports=""; _last=0; _still=0
        _t0=$(now)
        for _i in $(seq 1 "$2"); do
                _port=$(free_port)
                sed "s/^metrics.listen = .*/metrics.listen = 127.0.0.1:$_port/" "$CONF" > "$PH/mcd$_i.conf"
                "$MCD" run -c "$PH/mcd$_i.conf" > "$PH/daemon$_i.out" 2> "$PH/daemon$_i.log" &
                _pids="$_pids $!"; PIDS="$PIDS $!"; _ports="$_ports $_port"
        done
        while :; do
                _n=0
                for _port in $_ports; do
                        _c=$("$HTTP_GET" "127.0.0.1:$_port" /metrics 2> /dev/null |
                                awk '$1 ~ /^multichanneld_(events|dead_letters)_total/ { s += $NF } END { printf "%.0f\n", s }')
                        _n=$((_n + ${_c:-0}))
                done
                [ "$_n" -ge "$_want" ] && break
                for _p in $_pids; do
                        kill -0 "$_p" 2> /dev/null || die "an instance exited (see $PH/daemon*.log)"
                done
                if [ "$_n" = "$_last" ]; then _still=$((_still + 1)); else _still=0; _last=$_n; fi
                [ $_still -ge 600 ] && die "no progress for 60 s at $_n of $_want events (see $PH/daemon*.log)"
                sleep 0.1
        done
        GROUP_SECS=$(fsub "$(now)" "$_t0")
        GROUP_CPU=0; GROUP_HWM=0
        for _p in $_pids; do
                GROUP_CPU=$(awk -v a="$GROUP_CPU" -v b="$(proc_cpu "$_p")" 'BEGIN { printf "%.1f", a + b }')
                _h=$(proc_kb "$_p" VmHWM)
                [ "${_h:-0}" -gt "$GROUP_HWM" ] && GROUP_HWM=$_h
        done
        for _p in $_pids; do stop_pid "$_p"; done
}
if [ "$DO_TPUT" = 1 ] && [ "$GROUP_INSTANCES" -gt 1 ]; then
        log "throughput: $EVENTS events through $GROUP_INSTANCES instances in one group"
        services_up group
        publish "$EVENTS" "$CUSTOMERS" 1
        run_group "$PUB_EVENTS" "$GROUP_INSTANCES"
        row "(b2) $GROUP_INSTANCES instances in one group, start to last commit" "$(fdiv "$PUB_EVENTS" "$GROUP_SECS") events/s ($GROUP_SECS s)"
        row "ratio (b2)/(a)" "$(fdiv "$KCAT_SECS" "$GROUP_SECS" 3)"
        row "  their CPU time / largest peak RSS" "$GROUP_CPU s / $(fdiv "$GROUP_HWM" 1024 1) MiB"
        services_down
fi

# ---- 2. latency ---------------------------------------------------------------------
# The daemon's latency settings (batch.wait, merge_wait) and, for the mock
# cluster, a short fetch.wait.max.ms: the mock does not answer a waiting fetch
# when data arrives (a broker does), so an empty fetch costs its whole wait.
# The mock's cost per fetch grows with the partition's log (it finds the
# offset by a linear search of its message sets), which at 64 partitions and
# 10,000 events/s dominates its CPU within seconds; the figure is therefore
# given for LAT_PARTS partition counts, the first one the headline.  The p99
# of each fifth of the run is printed beside the whole run's, and Redis's AOF
# rewrites: at 10,000 events/s the AOF reaches the 64 MB of its first
# automatic rewrite within the run, and the commits around it stall (the
# fifth that holds it): the fork, the rewrite's child taking a core of two
# already busy, and the parent's copy-on-write faults (dear on this kind of
# virtual machine).  Redis's latency monitor (threshold 5 ms) names the
# stalls of its own main thread (fork, aof-write, aof-fsync-always,
# aof-rewrite-done, command...), each with its worst: what it does not name
# was the machine's cores, shared with the rewrite's child.
redis_stalls() {  # Redis's LATENCY LATEST as "event worst ms, ...", or "none"
        redis-cli -p "$REDIS_PORT" latency latest | grep -v '^$' | paste - - - - |
                awk -F'\t' '$1 != "" && $4 ~ /^[0-9]+$/ { printf "%s%s %s ms", sep, $1, $4; sep = ", " }
                            END { if (sep == "") print "none"; else print "" }'
}
latency_run() {  # latency_run PARTITIONS
        _parts_saved=$PARTS; _mw=$MERGE_WAIT; _bw=$BATCH_WAIT; _extra=${BENCH_EXTRA_CONF:-}
        PARTS=$1; MERGE_WAIT=$LAT_MERGE_WAIT; BATCH_WAIT=$LAT_BATCH_WAIT
        BENCH_EXTRA_CONF=$(printf 'kafka.fetch.wait.max.ms = %s\n%s' "$LAT_FETCH_WAIT" "$_extra")
        log "latency: $LAT_RATE events/s for $LAT_SECS s, $PARTS partitions"
        services_up "latency$1"
        PARTS=$_parts_saved; MERGE_WAIT=$_mw; BATCH_WAIT=$_bw; BENCH_EXTRA_CONF=$_extra
        start_daemon
        wait_until 60 daemon_ready || die "daemon not ready (see $PH/daemon.log)"
        n=$((LAT_RATE * (LAT_SECS + 2)))
        "$GEN" -s 2 -n "$n" -c "$CUSTOMERS" -T "$(date +%s%3N)" |
                "$LAT" -b "$BOOTSTRAP" -n "$n" -c "$CUSTOMERS" -r "$LAT_RATE" -d "$LAT_SECS" -W 3 -D 3 > "$PH/lat.out" ||
                die "latency helper"
        lat() { awk -F= -v k="$1" '$1 == k { print $2 }' "$PH/lat.out"; }
        row "latency, $1 partitions: rate achieved / events counted" "$(lat rate_achieved) events/s / $(lat trigger_events)"
        row "  p50 / p99 produce->outcome received (trigger)" "$(lat trigger_p50_ms) / $(lat trigger_p99_ms) ms (p99.9 $(lat trigger_p999_ms), max $(lat trigger_max_ms))"
        row "  p99 received, by fifth of the run" "$(lat trigger_window_p99_ms | sed 's/,/ \/ /g') ms"
        row "  p50 / p99 produce->outcome produced (its timestamp)" "$(lat produced_p50_ms) / $(lat produced_p99_ms) ms"
        row "  p50 / p99 produce->own outcome (direct, incl. parked)" "$(lat direct_p50_ms) / $(lat direct_p99_ms) ms ($(lat direct_with_outcome) events)"
        row "  daemon peak RSS / mock cluster CPU time" "$(fdiv "$(proc_kb "$DAEMON_PID" VmHWM)" 1024 1) MiB / $(proc_cpu "$KAFKA_PID") s"
        row "  partition ends asked of the broker by the merge / found ahead" "$(metric multichanneld_merge_end_queries_total) / $(metric multichanneld_merge_ends_ahead_total)"
        row "  Redis AOF rewrites in the run / the last one took" "$(redis_info aof_rewrites persistence) / $(redis_info aof_last_rewrite_time_sec persistence) s (its fork $(fdiv "$(redis_info latest_fork_usec stats)" 1000 1) ms)"
        row "  Redis main thread's stalls of 5 ms or more (event: worst)" "$(redis_stalls)"
        row "  load average after the run" "$(loadavg)"
        stop_daemon
        services_down
}
if [ "$DO_LAT" = 1 ]; then
        row "latency settings  [target p99 < 50 ms]" "batch.wait=$LAT_BATCH_WAIT merge_wait=$LAT_MERGE_WAIT kafka.fetch.wait.max.ms=$LAT_FETCH_WAIT"
        for lp in $LAT_PARTS; do latency_run "$lp"; done
fi

# ---- 3. peak RSS by customers ---------------------------------------------------------
if [ "$DO_RSS" = 1 ]; then
        for c in 10000 1000000; do
                log "peak RSS: $RSS_EVENTS events over $c customers"
                services_up "rss$c"
                publish "$RSS_EVENTS" "$c" 3
                run_to_completion "$PUB_EVENTS"
                row "daemon peak RSS, $c customers, $PUB_EVENTS events" "$(fdiv "$RUN_HWM" 1024 1) MiB ($(fdiv "$PUB_EVENTS" "$RUN_SECS") events/s, Redis $RUN_REDIS_MEM)"
                row "  at the end: anonymous / file-backed (libraries) RSS" "$(fdiv "$RUN_RSS_ANON" 1024 1) / $(fdiv "$RUN_RSS_FILE" 1024 1) MiB"
                services_down
        done
fi

# ---- 4. a hot customer --------------------------------------------------------------
hot_run() {  # hot_run LABEL GEN-ARGS...: publishes gen_events' stream, runs it; sets HOT_RATE HOT_HWM
        _label=$1; shift
        services_up "hot-$_label"
        "$GEN" "$@" > "$PH/in.jsonl" || die "gen_events"
        _n=$(wc -l < "$PH/in.jsonl")
        "$MCD" publish -c "$CONF" "$PH/in.jsonl" 2> "$PH/publish.err" || die "publish (see $PH/publish.err)"
        rm -f "$PH/in.jsonl"
        run_to_completion "$_n"
        # After start-up; or over the whole run when every event was done
        # before a poll saw the daemon ready (a steady window of nothing).
        HOT_BASIS="after start-up"
        HOT_RATE=$(fdiv "$RUN_STEADY_EVENTS" "$RUN_STEADY_SECS")
        if [ "$RUN_STEADY_EVENTS" -le 0 ] || ! awk -v s="$RUN_STEADY_SECS" 'BEGIN { exit !(s > 0) }'; then
                HOT_BASIS="whole run: all done before ready was seen"
                HOT_RATE=$(fdiv "$_n" "$RUN_SECS")
        fi
        HOT_HWM=$(fdiv "$RUN_HWM" 1024 1)
        HOT_STATE=$(redis-cli -p "$REDIS_PORT" strlen mcd:c:cust-hot)
        HOT_ERRORS=$(grep -c "cannot append to the changelog" "$PH/daemon.log")
        services_down
}
if [ "$DO_HOT" = 1 ]; then
        log "hot customer: $HOT_EVENTS events of one customer, then over 2,000 customers"
        hot_run one -H "$HOT_EVENTS" -T 1924992000000
        hot_one=$HOT_RATE; hot_basis=$HOT_BASIS; hot_hwm=$HOT_HWM; hot_state=$HOT_STATE; hot_err=$HOT_ERRORS
        hot_run spread -s 5 -n "$HOT_EVENTS" -c 2000 -T 1924992000000
        row "hot customer: $HOT_EVENTS events of one customer" "$hot_one events/s, $hot_basis (peak RSS $hot_hwm MiB, state $hot_state bytes, $hot_err changelog errors)"
        row "the same number over 2,000 customers" "$HOT_RATE events/s, $HOT_BASIS (peak RSS $HOT_HWM MiB)"
        row "hot / spread (goal >= 0.5)" "$(fdiv "$hot_one" "$HOT_RATE" 2)"
fi

echo
echo "== multichanneld benchmark ($(nproc) cores, $(uname -r); batch.max_events=$BATCH_MAX batch.wait=$BATCH_WAIT merge_wait=$MERGE_WAIT) =="
cat "$TABLE"
if [ -f "$WORK/commandstats.throughput" ]; then
        echo "Redis commands during (b), by time spent (a script's time includes the commands it calls):"
        sed 's/^/    /' "$WORK/commandstats.throughput"
fi
echo "Other jobs may share the CPU: compare the load averages above with the 2 cores."

#!/bin/sh
# notify.sh -- the daemon's side of Type=notify, as systemd would see it: the
# test binds its own NOTIFY_SOCKET (tests/notify_listen, a unix datagram
# socket printing each datagram as a line stamped with CLOCK_MONOTONIC) and
# runs the daemon against a redis-server and a mock cluster, with
# WATCHDOG_USEC=2000000 and no WATCHDOG_PID (sd_watchdog_enabled(3): the
# watchdog is then the main process's).
#
# Checks: READY=1 once, after the daemon owns its partitions; WATCHDOG=1 at
# least every WATCHDOG_USEC/2 or so (never a gap of WATCHDOG_USEC); STATUS=
# with live figures; /metrics during the run with counters moving and
# /healthz 200; SIGHUP reloads (RELOADING=1 with a MONOTONIC_USEC= of now,
# then READY=1) and the new log level and batch.threads apply; a bad file on SIGHUP is
# refused, named in the log, and the old configuration kept (the daemon goes
# on processing); SIGTERM sends STOPPING=1 and exits 0.
. "$MCD_SRCDIR/tests/lib.sh"

WATCHDOG_USEC=2000000
SOCK="$TMP/notify.sock"
NLOG="$TMP/notify.log"

has_field() {  # has_field FIELD [FROM_LINE]: a datagram from line FROM_LINE on holds FIELD exactly
        awk -v f="$1" -v from="${2:-1}" 'NR >= from { for (i = 2; i <= NF; i++) if ($i == f) found = 1 }
                END { exit !found }' "$NLOG"
}
line_of() {  # line_of FIELD [FROM_LINE]: number of the first line from FROM_LINE holding FIELD, or 0
        awk -v f="$1" -v from="${2:-1}" 'NR >= from && !n { for (i = 2; i <= NF; i++) if ($i == f) n = NR }
                END { print n + 0 }' "$NLOG"
}
count_field() {  # count_field FIELD [FROM_LINE]
        awk -v f="$1" -v from="${2:-1}" 'NR >= from { for (i = 2; i <= NF; i++) if ($i == f) n++ }
                END { print n + 0 }' "$NLOG"
}
metrics_value() {  # metrics_value NAME: the sum of a family's samples on /metrics
        "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /metrics 2>/dev/null |
                awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
metrics_at_least() { [ "$(metrics_value "$1")" -ge "$2" ]; }
config() {  # config LOG_LEVEL [EXTRA LINES...]: writes $TMP/mcd.conf, /metrics on METRICS_PORT
        _level=$1; shift
        write_config "$TMP/mcd.conf.new" "status.interval = 1s" "log.level = $_level" "$@"
        sed "s/^metrics.listen =.*/metrics.listen = 127.0.0.1:$METRICS_PORT/" "$TMP/mcd.conf.new" > "$TMP/mcd.conf"
}
reloaded_after() {  # reloaded_after LINE: RELOADING=1 then READY=1 after line LINE
        _r=$(line_of RELOADING=1 "$1")
        [ "$_r" -gt 0 ] && [ "$(line_of READY=1 "$_r")" -gt "$_r" ]
}
alive() { kill -0 "$DAEMON_PID" 2>/dev/null; }
publish() {  # publish SCENARIO_FILE (with the configuration last known good)
        "$MCD_BIN" publish --in-order -c "$TMP/good.conf" "$1" 2>> "$TMP/publish.err"
}

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 2; ok $? "mock cluster started at $BOOTSTRAP"
METRICS_PORT=$(free_port)
config info
cp "$TMP/mcd.conf" "$TMP/good.conf"

"$MCD_BUILDDIR/tests/notify_listen" -t "$SOCK" > "$NLOG" 2> "$TMP/notify.err" &
PIDS="$PIDS $!"
wait_until 10 test -S "$SOCK"
ok $? "notification socket bound at $SOCK"

(
        unset WATCHDOG_PID
        NOTIFY_SOCKET="$SOCK" WATCHDOG_USEC=$WATCHDOG_USEC
        export NOTIFY_SOCKET WATCHDOG_USEC
        exec $MCD run -c "$TMP/mcd.conf" > "$TMP/daemon.out" 2> "$TMP/daemon.log"
) &
DAEMON_PID=$!
PIDS="$PIDS $DAEMON_PID"

# ---- READY=1 -------------------------------------------------------------
wait_until 60 has_field READY=1
ok $? "READY=1 received"
daemon_ready "$TMP/daemon.log"
ok $? "READY=1 came once the daemon owned its partitions (\"ready:\" logged)"

# ---- /healthz and /metrics -------------------------------------------------
wait_until 10 "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /healthz
ok $? "/healthz answers 200 once ready"
"$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /metrics > "$TMP/metrics.0" 2>&1
ok $? "/metrics answers during the run"
grep -q '^multichanneld_ready 1$' "$TMP/metrics.0"
ok $? "/metrics says multichanneld_ready 1"
events0=$(metrics_value multichanneld_events_total)
batches0=$(metrics_value multichanneld_batches_total)

publish "$MCD_SRCDIR/tests/scenarios/01-license-switch-blocked-until-term-end.jsonl"
ok $? "published a scenario"
wait_until 30 metrics_at_least multichanneld_events_total $((events0 + 1))
ok $? "multichanneld_events_total moved ($events0 -> $(metrics_value multichanneld_events_total))"
wait_until 10 metrics_at_least multichanneld_batches_total $((batches0 + 1))
ok $? "multichanneld_batches_total moved ($batches0 -> $(metrics_value multichanneld_batches_total))"
metrics_at_least multichanneld_outcomes_total 1
ok $? "multichanneld_outcomes_total counts the outcomes ($(metrics_value multichanneld_outcomes_total))"
metrics_at_least multichanneld_batch_duration_seconds_count 1
ok $? "the batch duration histogram has observations"

# ---- WATCHDOG=1 and STATUS= --------------------------------------------------
watch_line=$(($(wc -l < "$NLOG") + 1))
sleep 3
n_wd=$(count_field WATCHDOG=1 "$watch_line")
[ "$n_wd" -ge 2 ]
ok $? "WATCHDOG=1 keeps coming after READY=1 ($n_wd in about 3 s)"
max_gap=$(awk -v from="$watch_line" 'NR >= from { for (i = 2; i <= NF; i++) if ($i == "WATCHDOG=1") {
                if (last) { g = $1 - last; if (g > max) max = g } last = $1 } } END { print max + 0 }' "$NLOG")
echo "# longest gap between WATCHDOG=1: $max_gap us (WATCHDOG_USEC=$WATCHDOG_USEC)"
[ "$max_gap" -lt "$WATCHDOG_USEC" ]
ok $? "no gap between two WATCHDOG=1 reaches WATCHDOG_USEC"
grep ' STATUS=' "$NLOG" | tail -1 | sed 's/^[0-9]* //' | diag
grep ' STATUS=' "$NLOG" | tail -1 | grep -q '[0-9]'
ok $? "STATUS= carries live figures"
grep ' STATUS=' "$NLOG" | tail -1 | grep -qi 'parked' && grep ' STATUS=' "$NLOG" | tail -1 | grep -qi 'dead'
ok $? "STATUS= names parked events and dead letters"

# ---- SIGHUP: reload ----------------------------------------------------------
[ "$(count_field READY=1)" -eq 1 ]
ok $? "READY=1 sent once so far"
! grep -q ": debug: " "$TMP/daemon.log"
ok $? "no debug entries at log.level info"
before=$(($(wc -l < "$NLOG") + 1))
config debug "batch.threads = 3"
cp "$TMP/mcd.conf" "$TMP/good.conf"
kill -HUP "$DAEMON_PID"
wait_until 30 reloaded_after "$before"
ok $? "SIGHUP: RELOADING=1, then READY=1"
grep -q "reload: batch.threads 2 -> 3" "$TMP/daemon.log"
ok $? "the batch threads are replaced (2 -> 3) on reload"
reload_line=$(line_of RELOADING=1 "$before")
mono="" received=0
if [ "$reload_line" -gt 0 ]; then
        sed -n "${reload_line}p" "$NLOG" | diag
        mono=$(sed -n "${reload_line}p" "$NLOG" | sed -n 's/.* MONOTONIC_USEC=\([0-9]*\).*/\1/p')
        received=$(sed -n "${reload_line}p" "$NLOG" | cut -d' ' -f1)
fi
[ -n "$mono" ] && [ "$mono" -le "$received" ] && [ $((received - mono)) -lt 10000000 ]
ok $? "RELOADING=1 comes with MONOTONIC_USEC= of the moment (${mono:-none}, received at $received)"
alive
ok $? "the daemon runs on after the reload"
publish "$MCD_SRCDIR/tests/scenarios/02-azure-new-csp-subscription-coexists.jsonl"
wait_until 30 grep -q ": debug: batch " "$TMP/daemon.log"
ok $? "the new log.level (debug) applies: the next batches are logged at debug"

# ---- SIGHUP with a bad file: refused, the old one kept ----------------------
before=$(($(wc -l < "$NLOG") + 1))
cp "$TMP/mcd.conf" "$TMP/good.conf"
n_out=$(count_outcomes "$TMP/good.conf")
echo "bogus.key = 1" >> "$TMP/mcd.conf"
kill -HUP "$DAEMON_PID"
wait_until 30 reloaded_after "$before"
ok $? "SIGHUP with a bad file: RELOADING=1, then READY=1 all the same"
wait_until 10 grep -q "bogus.key" "$TMP/daemon.log"
ok $? "the bad line is named in the log"
grep "bogus.key" "$TMP/daemon.log" | head -3 | diag
alive
ok $? "the daemon runs on with the old configuration"
publish "$MCD_SRCDIR/tests/scenarios/03-csp-to-csp-resale-rejected.jsonl"
wait_until 30 outcomes_at_least "$TMP/good.conf" $((n_out + 1))
ok $? "and goes on processing events ($n_out -> $(count_outcomes "$TMP/good.conf") outcomes)"
"$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /healthz > /dev/null 2>&1
ok $? "/healthz still 200"
cp "$TMP/good.conf" "$TMP/mcd.conf"

# ---- SIGTERM -------------------------------------------------------------------
before=$(($(wc -l < "$NLOG") + 1))
kill -TERM "$DAEMON_PID"
wait_until 30 sh -c "! kill -0 $DAEMON_PID"
ok $? "the daemon stops on SIGTERM"
wait "$DAEMON_PID"
st=$?
ok $st "and exits 0 (status $st)"
has_field STOPPING=1 "$before"
ok $? "STOPPING=1 sent"
[ "$(line_of READY=1 "$before")" -eq 0 ]
ok $? "no READY=1 after SIGTERM"
no_sanitizer_report "$TMP/daemon.log"   # the batch threads replaced on reload included
tail -5 "$NLOG" | sed 's/^[0-9]* //' | diag
grep -E "error|warning" "$TMP/daemon.log" | grep -v -e "kafka " -e "bogus.key" | diag
tap_done

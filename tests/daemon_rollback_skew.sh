#!/bin/sh
# daemon_rollback_skew.sh -- a rollback of timers that another instance
# fired by a clock running ahead of the next owner's.
#
# Daemon 1 runs SKEW seconds ahead (tests/clock_ahead.c): the switches
# blocked until a term_end T are allowed by its clock at T - SKEW.  Redis
# is snapshotted before that, daemon 1 fires the timers, is SIGKILLed, and
# Redis is rolled back to the snapshot: what it lost are commits that only
# fired timers, whose outcomes librdkafka stamped by daemon 1's clock.
# Daemon 2, on the true clock, finds the rollback and looks up what is
# already published.  By its clock nothing is due yet, so the lookup's time
# alone would settle the re-processing record at once; a restart after
# that (daemon 2 SIGKILLed before T) would fire the timers again at T with
# nothing looked up, and publish their outcomes twice.  The outcomes looked
# up carry daemon 1's clock: the record must wait for what is due by then.
# The test shows that daemon 1 fired before T by the true clock, that
# daemon 2 kept the record (its time raised to T or later, and stored) and
# was SIGKILLed before T with the customers still due, and that daemon 3
# looked the outputs up again; then that the outcome topic holds replay's
# outcomes (with --now past T), each once, and Redis replay's final states.
# This is also the rollback that has no input to re-read, only timers.
. "$MCD_SRCDIR/tests/lib.sh"

CUSTOMERS=${MCD_ROLLBACK_SKEW_CUSTOMERS:-30}
SKEW=${MCD_ROLLBACK_SKEW_SECONDS:-45}       # daemon 1's clock ahead: daemon 2's time to start, settle and be killed
LEAD_MS=${MCD_ROLLBACK_SKEW_LEAD_MS:-20000} # daemon 1 fires this long after the events: time to apply them and snapshot

start_services 1 "batch.wait = 10ms"
# tests/clock_ahead.c moves the wall clock; ASan would refuse to start with
# a preloaded library ahead of its runtime.
MCD_CLOCK_AHEAD_MS=$((SKEW * 1000)) LD_PRELOAD="$MCD_BUILDDIR/tests/clock_ahead.so" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        $MCD run -c "$TMP/mcd.conf" > "$TMP/daemon.1.log.out" 2> "$TMP/daemon.1.log" &
DAEMON_PID=$!
PIDS="$PIDS $DAEMON_PID"
wait_until 60 daemon_ready "$TMP/daemon.1.log"
ok $? "daemon 1 ready, its clock $SKEW s ahead"

s=$(now_ms)
T=$((s + SKEW * 1000 + LEAD_MS))
blocked_switches "$CUSTOMERS" "$s" "$T"
n_before=$($MCD replay "$TMP/in.jsonl" | wc -l)
expect_replay --now "$(iso $((T + 60000)))" "$TMP/in.jsonl"
ok $([ "$n_want" -gt "$n_before" ]; echo $?) "replay: $n_before outcomes before T, $n_want once the timers fired"

apply_then_snapshot "$n_before"
left=$((T - SKEW * 1000 - $(now_ms)))
ok $([ "$left" -gt 1000 ]; echo $?) "the snapshot taken $left ms before daemon 1's clock reaches T"
timers_rolled_back "$n_want"
left=$((T - $(now_ms)))
ok $([ "$left" -gt 0 ]; echo $?) "daemon 1 fired the timers at least $left ms before T by the true clock"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.2.log"
wait_until 60 grep -q "Redis came back older" "$TMP/daemon.2.log"
ok $? "daemon 2 found the rollback"
wait_until 60 grep -q "ms past this clock: re-processing is done once" "$TMP/daemon.2.log"
ok $? "daemon 2 saw the outputs looked up stamped ahead of its clock"
grep "ms past this clock" "$TMP/daemon.2.log" | head -1 | diag
sleep 3                 # settle checks, once a second
redo_pending
ok $? "the re-processing record stays (it went at once, nothing being due by daemon 2's clock)"
stored=$(redis-cli -p "$REDIS_PORT" hget mcd:redo:0 due)
ok $([ "${stored:-0}" -ge "$T" ]; echo $?) "its time raised to $((${stored:-0} - T)) ms past T in Redis"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
left=$((T - $(now_ms)))
due_at_t=$(redis-cli -p "$REDIS_PORT" zcount mcd:due:0 -inf "$T")
ok $([ "$left" -gt 0 ] && [ "$due_at_t" -ge "$CUSTOMERS" ]; echo $?) \
        "daemon 2 SIGKILLed $left ms before T, $due_at_t customers due by T"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.3.log"
wait_until 60 grep -q "looking up what it already published" "$TMP/daemon.3.log"
ok $? "daemon 3 looked the outputs up again"
sleep_until "$T"
wait_until 60 compare_states "$TMP/mcd.conf" "$TMP/want_states"
ok $? "daemon 3 fired the timers Redis lost"
wait_until 30 redo_done
ok $? "then the re-processing record was dropped"
wait_until 30 grep -q "forgetting the [0-9]* output ids looked up" "$TMP/daemon.3.log"
ok $? "and the output ids looked up forgotten"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
stop_services
no_sanitizer_report "$TMP"/daemon.*.log
tap_done

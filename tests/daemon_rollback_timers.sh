#!/bin/sh
# daemon_rollback_timers.sh -- a rollback that only timers saw: Redis comes
# back older after its owner is gone, and what it lost are commits that
# fired timers by the wall clock and moved no input offset.  The next owner
# finds the rollback by the commit counter the consumer group's copy
# carries; that copy must follow every commit, not only those that moved
# an offset, or the counters agree, the timers fire again and their
# outcomes go out twice.
#
# Switches blocked until a term_end T a little ahead are applied, then one
# event of a customer of its own and its repeat (which emits nothing): their
# commits trim the outbox, so that the next owner has nothing to reconcile,
# whose lookup of the output topics would find the timers' outcomes.  Redis
# is snapshotted before T; at T the idle pair fires SwitchAllowed by the
# wall clock.  The test shows that the commits after the snapshot moved no
# offset and advanced the counters, and that Redis was rolled back to the
# snapshot after the owner was SIGKILLed; then that a new owner found the
# rollback, and that the outcome topic holds replay's outcomes (with --now
# past T), each once, and Redis replay's final states.
#
# Second part: the new owner is kept busy with events older than T, so that
# the timers wait, and is SIGKILLed while they do.  The rollback's lookup
# must outlive it: the re-processing record stays until nothing is due by
# the lookup's time, and the third owner looks the outputs up again.
# Before, the record went once the input was re-processed (and a rollback
# without input to re-read wrote none), and the third owner published the
# timers' outcomes twice (30 of them).
. "$MCD_SRCDIR/tests/lib.sh"

CUSTOMERS=${MCD_ROLLBACK_TIMERS_CUSTOMERS:-30}
LEAD_MS=${MCD_ROLLBACK_TIMERS_LEAD_MS:-20000}   # T, this long after the events: time to apply them and snapshot

start_services 1 "batch.wait = 10ms"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.1.log"
wait_until 60 daemon_ready "$TMP/daemon.1.log"
ok $? "daemon 1 ready"

s=$(now_ms)
T=$((s + LEAD_MS))
blocked_switches "$CUSTOMERS" "$s" "$T"
n_before=$($MCD replay "$TMP/in.jsonl" | wc -l)
expect_replay --now "$(iso $((T + 60000)))" "$TMP/in.jsonl"
ok $([ "$n_want" -gt "$n_before" ]; echo $?) "replay: $n_before outcomes before T, $n_want once the timers fired"

apply_then_snapshot "$n_before"
left=$((T - $(now_ms)))
ok $([ "$left" -gt 1000 ]; echo $?) "the snapshot taken $left ms before T"
timers_rolled_back "$n_want"

# Daemons 2 and 3 see the nudge's repeat (which emits nothing; its stream
# time is before T) every few tenths of a second, under a merge_wait long
# enough to keep the pair busy: its due scan goes by that stream time, so
# the timers wait for the feed to stop.  The feed begins before daemon 2,
# so the rollback has input to re-read.
write_config "$TMP/busy.conf" "batch.wait = 10ms" "merge_wait = 10s"
( while [ ! -e "$TMP/feed.stop" ]; do publish_events "$TMP/nudge.jsonl" "$TMP/busy.conf"; sleep 0.2; done ) &
FEED_PID=$!
PIDS="$PIDS $FEED_PID"
start_daemon "$TMP/busy.conf" "$TMP/daemon.2.log"
wait_until 60 grep -q "Redis came back older" "$TMP/daemon.2.log"
ok $? "daemon 2 found the rollback"
grep "came back older" "$TMP/daemon.2.log" | head -2 | diag
wait_until 60 daemon_ready "$TMP/daemon.2.log"
ok $? "daemon 2 ready"
fed=$((snap_offsets + 10))
fed_past() { [ "$(offsets_sum)" -ge "$fed" ]; }
wait_until 60 fed_past
ok $? "daemon 2 applies the feed: offsets summed $(offsets_sum), $fed wanted"
sleep 3                 # settle checks, once a second
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
due_now=$(redis-cli -p "$REDIS_PORT" zcount mcd:due:0 -inf "$(now_ms)")
ok $([ "$due_now" -ge "$CUSTOMERS" ]; echo $?) "daemon 2 SIGKILLed before the timers fired again: $due_now customers due by now"
redo_pending
ok $? "the rollback's re-processing record outlives it (it went once the input was re-processed)"
start_daemon "$TMP/busy.conf" "$TMP/daemon.3.log"
wait_until 60 grep -q "looking up what it already published" "$TMP/daemon.3.log"
ok $? "daemon 3 looked the outputs up again"
wait_until 60 daemon_ready "$TMP/daemon.3.log"
ok $? "daemon 3 ready"
# A stray due entry, a customer with no state (deleted by hand), due long
# ago: the due scan finds it each second, and the commit must take it out,
# or it would keep the record for good.
redis-cli -p "$REDIS_PORT" zadd mcd:due:0 1 ghost > /dev/null
touch "$TMP/feed.stop"
wait "$FEED_PID"
# The timers fire again once the pair is idle; any outcome published twice
# went out in the same commits.
wait_until 60 compare_states "$TMP/busy.conf" "$TMP/want_states"
ok $? "daemon 3 fired the timers Redis lost"
wait_until 30 redo_done
ok $? "then the re-processing record was dropped"
ghost=$(redis-cli -p "$REDIS_PORT" zscore mcd:due:0 ghost)
ok $([ -z "$ghost" ]; echo $?) "the stray due entry was taken out (score '$ghost' left)"
wait_until 30 grep -q "forgetting the [0-9]* output ids looked up" "$TMP/daemon.3.log"
ok $? "and the output ids looked up forgotten ($(grep -o "forgetting the [0-9]* output ids" "$TMP/daemon.3.log" | tail -1))"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
stop_services
no_sanitizer_report "$TMP"/daemon.*.log
tap_done

#!/bin/sh
# daemon_rollback_ahead.sh -- a rollback's lookup takes the clock each
# outcome was made by from the outcome itself (header mcd.clock), not from
# the clock that produced it.
#
# An outcome's create time is its producer's clock when producing it; the
# rules may have made it by another clock: a stream time ahead (an event
# dated ahead, out of order), or the clock of an instance whose frame
# another instance produced from the outbox.  A lookup that took the create
# time alone would settle the re-processing record before the timers that
# clock fired came due here (for the stream time: once an owner stopped
# while re-processing took the stream time it reached with it).
#
# Daemon 1 applies switches blocked until far ahead and an event of a
# customer of its own, Redis is snapshotted, then daemon 1 applies an
# event dated AHEAD seconds in the future (its outcome made by that stream
# time, produced now), is SIGKILLed, and Redis is rolled back to the
# snapshot.  The test shows that the outcome carries that stream time in
# its header while its create time is the wall clock; that daemon 2 found
# the rollback and logged the outcomes looked up as made about AHEAD
# seconds ahead of its clock; then that the outcome topic holds replay's
# outcomes, each once, and Redis replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

CUSTOMERS=5
AHEAD=${MCD_ROLLBACK_AHEAD_SECONDS:-600}

start_services 1 "batch.wait = 10ms"
TOPIC=$(outcome_topic)
start_daemon "$TMP/mcd.conf" "$TMP/daemon.1.log"
wait_until 60 daemon_ready "$TMP/daemon.1.log"
ok $? "daemon 1 ready"

s=$(now_ms)
E=$((s + AHEAD * 1000))
blocked_switches "$CUSTOMERS" "$s" $((E + 3600000))
ev ahead "$E" c-ahead RelationshipRequested "$EV_REL" > "$TMP/ahead.jsonl"
n_before=$($MCD replay "$TMP/in.jsonl" | wc -l)
cat "$TMP/in.jsonl" "$TMP/ahead.jsonl" > "$TMP/all.jsonl"
expect_replay "$TMP/all.jsonl"
ok $([ "$n_want" -gt "$n_before" ]; echo $?) "replay: $n_before outcomes before the event dated ahead, $n_want after"

apply_then_snapshot "$n_before"
publish_events "$TMP/ahead.jsonl"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon 1 applied the event dated $AHEAD s ahead: $n_want outcomes"
sleep 5                 # its commit's copy to the group, sent at most once a second
seqs=$(seqs_sum)
ok $([ "$seqs" -gt "$snap_seqs" ]; echo $?) "daemon 1 committed after the snapshot (counters summed $snap_seqs, then $seqs)"
kill_and_roll_back "daemon 1"

# The outcome of the event dated ahead: create time, then the header.
kcat -C -b "$BOOTSTRAP" -t "$TOPIC" -e -q -f '%k %T %h\n' 2> "$TMP/kcat.err" | grep "^c-ahead " > "$TMP/ahead.out"
diag < "$TMP/ahead.out"
made=$(sed -n 's/.*mcd\.clock=\([0-9]*\).*/\1/p' "$TMP/ahead.out" | head -1)
created=$(cut -d' ' -f2 "$TMP/ahead.out" | head -1)
ok $([ "${made:-0}" -eq "$E" ] && [ "${created:-0}" -lt $((E - AHEAD * 500)) ] &&
        grep -q "mcd\.partition=0" "$TMP/ahead.out"; echo $?) \
        "its outcome made by partition 0's stream time $E (mcd.clock=$made), produced at $created"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.2.log"
wait_until 60 grep -q "Redis came back older" "$TMP/daemon.2.log"
ok $? "daemon 2 found the rollback"
wait_until 60 grep -q "the outcomes looked up were made by a clock up to" "$TMP/daemon.2.log"
ok $? "daemon 2 saw the outcomes looked up made ahead of its clock"
ahead_ms=$(sed -n 's/.*made by a clock up to \([0-9]*\) ms ahead.*/\1/p' "$TMP/daemon.2.log" | head -1)
ok $([ "${ahead_ms:-0}" -gt $((AHEAD * 500)) ]; echo $?) "by ${ahead_ms:-0} ms (the event: $AHEAD s)"
wait_until 60 grep -q "ms past this clock: re-processing is done once" "$TMP/daemon.2.log"
ok $? "the re-processing record's time raised past this clock"
wait_until 60 compare_states "$TMP/mcd.conf" "$TMP/want_states"
ok $? "daemon 2 re-processed the input"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
stop_services
no_sanitizer_report "$TMP"/daemon.*.log
tap_done

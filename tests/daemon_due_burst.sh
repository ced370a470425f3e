#!/bin/sh
# daemon_due_burst.sh -- a burst of timers due at once is taken a batch at a
# time: a due scan takes at most batch.max_events customers, shared out
# among the pairs, and scans again at the next batch while more are due.
# Before, each scan took up to 1000 customers a partition on top of the
# batch's events, so one batch's customers (their states, their frames, the
# commit) grew with the partitions owned: 64,000 more than the key says.
#
# CUSTOMERS customers over 4 partitions get a switch blocked until a
# term_end T that lies between their events' time and the wall clock: the
# events (stamped well in the past) leave every timer pending, and once a
# pair goes idle its due scan, by the wall clock, finds them all due.  The
# debug lines of the batches show that the burst was larger than a batch
# (more due batches than one, the customers they took summing to the
# burst) and that no batch took more than batch.max_events due customers;
# then the outcomes are replay's, each once.
. "$MCD_SRCDIR/tests/lib.sh"

CUSTOMERS=${MCD_DUE_BURST_CUSTOMERS:-200}
BATCH=20

start_services 4 "batch.max_events = $BATCH" "batch.wait = 10ms" "log.level = debug"

s=$(now_ms)
T=$((s - 60000))                # term_end: a minute ago, after the events below
blocked_switches "$CUSTOMERS" $((T - 60000)) "$T"
expect_replay --now "$(iso "$s")" "$TMP/in.jsonl"
n_timers=$(grep -c '"type":"SwitchAllowed"' "$TMP/want")
ok $([ "$n_timers" -eq "$CUSTOMERS" ]; echo $?) "replay: $n_want outcomes, $n_timers of them the timers' SwitchAllowed"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"
publish_events "$TMP/in.jsonl"
ok $? "published $CUSTOMERS customers' switches blocked until T, $(((s - T) / 1000)) s before the wall clock"
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "every outcome on the topic, the timers' included"

# "batch N: E events, D due customers, C customers, ...": the due batches.
sed -n 's/.*batch [0-9]*: [0-9]* events, \([0-9]*\) due customers, .*/\1/p' "$TMP/daemon.log" |
        awk '$1 > 0' > "$TMP/due_batches"
n_due_batches=$(wc -l < "$TMP/due_batches")
due_sum=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/due_batches")
due_max=$(sort -n "$TMP/due_batches" | tail -1)
ok $([ "$n_due_batches" -gt 1 ] && [ "$due_sum" -ge "$CUSTOMERS" ]; echo $?) \
        "the burst took $n_due_batches batches, $due_sum due customers in all ($CUSTOMERS due at once)"
ok $([ "${due_max:-0}" -le "$BATCH" ]; echo $?) "no batch took more than batch.max_events = $BATCH due customers (at most $due_max)"
sleep 1
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log"
tap_done

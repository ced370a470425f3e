#!/bin/sh
# daemon_due_burst.sh -- a burst of timers due at once is taken a batch at a
# time: a due scan takes at most batch.max_events customers, shared out
# among the pairs, and scans again at the next batch while more are due.
# Before, each scan took up to 1000 customers a partition on top of the
# batch's events, so one batch's customers (their states, their frames, the
# commit) grew with the partitions owned: 64,000 more than the key says.
#
# Once the daemon is ready, CUSTOMERS customers over 4 partitions get a
# switch blocked until a term_end T a little ahead of the wall clock,
# applied while the wall clock is before T.  Then FEED other customers'
# two events each (both topics, so the merge never waits for a side) come
# in one publish, the first tenth stamped before T, the rest after: while
# the rest are buffered and applied (seconds: longer than the due scans'
# second), their pairs' stream time is past T, so the due scans find the
# whole burst due by stream time, and due batches come between input
# batches.  The debug lines show that the next batch was collected while a
# due batch committed, that the burst was larger than a batch (at least
# CUSTOMERS / BATCH due batches) and each due customer was taken once (a
# batch collected while one with due customers commits must not scan:
# their due entries move with that commit, and it took them again, 190
# instead of 100), that a scan left more for the next batch, and that no
# batch took more than batch.max_events due customers; then the outcomes
# are replay's, each once.
. "$MCD_SRCDIR/tests/lib.sh"

CUSTOMERS=100
BATCH=10
FEED=${MCD_DUE_BURST_FEED:-20000}   # its events after T take seconds to apply, longer than the scans' second
LEAD_MS=${MCD_DUE_BURST_LEAD_MS:-30000}   # T, this long after the daemon is ready: time to apply the history

start_services 4 "batch.max_events = $BATCH" "batch.wait = 10ms" "log.level = debug"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"

s=$(now_ms)
T=$((s + LEAD_MS))
blocked_switches "$CUSTOMERS" "$s" "$T"
publish_events "$TMP/history.jsonl"
n_before=$($MCD replay "$TMP/history.jsonl" | wc -l)
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_before"
ok $? "$CUSTOMERS customers' switches blocked until T applied ($n_before outcomes)"
left=$((T - $(now_ms)))
ok $([ "$left" -gt 0 ]; echo $?) "... with the wall clock $left ms before T: no timer fired yet"

# The feed: FEED customers' RelationshipRequested and SubscriptionReported,
# a millisecond apart (the merge takes both topics, neither waits for the
# other), the first tenth from 10 s before T, the rest from 1 s after it:
# the pairs' stream time passes T once the feed is buffered.
B=$((T - 10000)) A=$((T + 1000))
seq $((B / 1000)) $(((A + FEED) / 1000 + 1)) | sed 's/^/@/' | date -u -f - +%Y-%m-%dT%H:%M:%S > "$TMP/seconds"
awk -v n="$FEED" -v b="$B" -v a="$A" -v rel="$EV_REL" -v sub_="$EV_SUB" '
        { second[NR - 1] = $0 }
        function at(ms) { return sprintf("%s.%03dZ", second[int(ms / 1000) - int(b / 1000)], ms % 1000) }
        function ev(id, ms, c, type, rest) {
                printf "{\"event_id\":\"%s\",\"occurred_at\":\"%s\",\"customer_id\":\"%s\",\"cloud\":" \
                       "\"COMMERCIAL\",\"type\":\"%s\",%s}\n", id, at(ms), c, type, rest
        }
        END {
                for (i = 0; i < n; i++) {
                        ms = i < n / 10 ? b + i : a + i
                        ev("fr" i, ms, "feed-" i, "RelationshipRequested", rel)
                        ev("fs" i, ms, "feed-" i, "SubscriptionReported", "\"subscription_id\":\"m365-f" i "\"," sub_ \
                           ",\"term_end\":\"2031-01-01T00:00:00.000Z\"")
                }
        }' "$TMP/seconds" > "$TMP/feed.jsonl"
"$MCD_BIN" publish -c "$TMP/mcd.conf" "$TMP/feed.jsonl" 2>> "$TMP/publish.err"
ok $? "published $FEED customers' two events, $((FEED / 10)) customers' before T, the rest after"
cat "$TMP/history.jsonl" "$TMP/feed.jsonl" > "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
n_timers=$(grep -c '"type":"SwitchAllowed"' "$TMP/want")
ok $([ "$n_timers" -eq "$CUSTOMERS" ]; echo $?) "replay: $n_want outcomes, $n_timers of them the timers' SwitchAllowed"
wait_until 180 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "every outcome on the topic, the timers' included"

sleep 1                 # the batch's debug line follows its outcomes
# "batch N: E events, D due customers, C customers, ...": the due batches.
sed -n 's/.*batch [0-9]*: [0-9]* events, \([0-9]*\) due customers, .*/\1/p' "$TMP/daemon.log" |
        awk '$1 > 0' > "$TMP/due_batches"
n_due_batches=$(wc -l < "$TMP/due_batches")
due_sum=$(awk '{ s += $1 } END { print s + 0 }' "$TMP/due_batches")
due_max=$(sort -n "$TMP/due_batches" | tail -1)
ahead=$(grep -cE "batch [0-9]+: [0-9]+ events, [1-9][0-9]* due customers, .*next batch applied" "$TMP/daemon.log")
ok $([ "$ahead" -ge 1 ]; echo $?) "$ahead due batches had the next batch collected while they committed"
ok $([ "$n_due_batches" -ge $((CUSTOMERS / BATCH)) ] && [ "$due_sum" -eq "$CUSTOMERS" ]; echo $?) \
        "the burst took $n_due_batches batches, $due_sum due customers in all, each once ($CUSTOMERS due at once)"
ok $([ "${due_max:-0}" -le "$BATCH" ]; echo $?) "no batch took more than batch.max_events = $BATCH due customers (at most $due_max)"
rescans=$(grep -c "the next batch looks again" "$TMP/daemon.log")
ok $([ "$rescans" -ge 1 ]; echo $?) "a scan that left customers due had the next batch look again ($rescans times)"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log"
tap_done

#!/bin/sh
# daemon_batch_bytes.sh -- batch.max_bytes through the real daemon: few
# customers with long histories, so that their state outgrows the budget of
# a batch.  Every batch must take no more customers than the bound the
# daemon computed after the one before (its debug log gives both), the bound
# must fall below batch.max_events as the state grows, and the outcome topic
# and Redis must still be exactly replay's.
. "$MCD_SRCDIR/tests/lib.sh"

MAX_EVENTS=200
start_services 2 "batch.max_events = $MAX_EVENTS" "batch.max_bytes = 16384" \
        "batch.wait = 20ms" "log.level = debug"

future_stream 7 1500 40 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
[ "$n_want" -ge 100 ]; ok $? "replay gives $n_want outcomes for $(wc -l < "$TMP/in.jsonl") events of 40 customers"

publish_events "$TMP/in.jsonl"
ok $? "events published"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the daemon produces every outcome"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""

# "batch K: E events, D due customers, C customers, ... batches of N
# customers": N bounds batch K+1's C.
sed -n 's/.*debug: batch \([0-9]*\): [0-9]* events, [0-9]* due customers, \([0-9]*\) customers,.*batches of \([0-9]*\) customers$/\1 \2 \3/p' \
        "$TMP/daemon.log" > "$TMP/batches"
n_batches=$(wc -l < "$TMP/batches")
[ "$n_batches" -ge 5 ]; ok $? "the debug log shows $n_batches batches"
awk 'NR > 1 && $2 > bound { bad++; print "batch " $1 ": " $2 " customers over the bound " bound }
     { bound = $3 } END { exit bad > 0 }' "$TMP/batches" | diag
awk 'NR > 1 && $2 > bound { bad++ } { bound = $3 } END { exit bad > 0 }' "$TMP/batches"
ok $? "no batch takes more customers than the bound computed after the batch before"
least=$(awk 'NR == 1 || $3 < m { m = $3 } END { print m + 0 }' "$TMP/batches")
[ "$least" -lt "$MAX_EVENTS" ] && [ "$least" -ge 16 ]
ok $? "the bound falls below batch.max_events as the state grows ($least of $MAX_EVENTS), never below 16"
tail -n 1 "$TMP/batches" | sed 's/^/last batch, customers, bound: /' | diag

stop_daemon_ok
tap_done

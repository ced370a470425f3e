#!/bin/sh
# daemon_wrong_type.sh -- a key the commit writes made of another type while
# the daemon runs (someone SETs a string where a partition's outbox list
# is).  Redis runs the rest of a transaction past a command that fails, so
# the commit would leave the batch half written: offsets and customers
# without the outbox frames, whose outcomes would then never be published.
# The commit's fence reads the keys' types first, and WATCHes them
# (store_fence.c): nothing of a batch with that partition is written, the
# daemon logs the key, holds consumption back for a growing while (before
# the hold it claimed again in a loop, 333 times in 5 s), and goes on once
# the key is deleted.  The outcome topic must hold replay's
# outcomes exactly once, and Redis replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_WRONG_TYPE_EVENTS:-1200}
BAD=mcd:outbox:2
METRICS=127.0.0.1:$(free_port)
start_services 4 "batch.max_events = 30" "batch.wait = 10ms" "metrics.listen = $METRICS"
current_stream 29 "$EVENTS" 150 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"
half=$((EVENTS / 2))
head -n "$half" "$TMP/in.jsonl" > "$TMP/first.jsonl"
tail -n +"$((half + 1))" "$TMP/in.jsonl" > "$TMP/second.jsonl"
n_first=$($MCD replay --now "$(utc_now)" "$TMP/first.jsonl" | wc -l)

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
publish_events "$TMP/first.jsonl"
ok $? "published the first $half events"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_first"
ok $? "the first half's $n_first outcomes are out"

redis-cli -p "$REDIS_PORT" set "$BAD" "not a list" > /dev/null
ok $? "$BAD made a string"
seq_before=$(redis-cli -p "$REDIS_PORT" hget mcd:off:2 seq)
publish_events "$TMP/second.jsonl"
ok $? "published the other $((EVENTS - half)) events"
wait_until 30 grep -q "Redis key $BAD is a string, not a list" "$TMP/daemon.log"
ok $? "the daemon names the key and its type"
grep -h "Redis key $BAD" "$TMP/daemon.log" | head -1 | sed 's/^.*\] *//' | diag
sleep 3
seq_after=$(redis-cli -p "$REDIS_PORT" hget mcd:off:2 seq)
[ "$seq_after" = "$seq_before" ] && [ "$(redis-cli -p "$REDIS_PORT" type "$BAD")" = string ]
ok $? "partition 2 committed nothing meanwhile (commit counter $seq_before, then $seq_after)"
outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $([ $? -ne 0 ]; echo $?) "the outcomes are not all out while it is a string"
kill -0 "$DAEMON_PID"
ok $? "the daemon keeps running"
wait_until 10 sh -c "'$MCD_BUILDDIR/tests/http_get' $METRICS /healthz 2>/dev/null | grep -q 'of another type'"
ok $? "/healthz says a Redis key is of another type"
holds=$(grep -c "holds a key of the daemon's of another type" "$TMP/daemon.log")
[ "$holds" -ge 1 ] && [ "$holds" -le 12 ]
ok $? "it holds consumption back and tries again, growing the hold, not in a loop ($holds holds)"

redis-cli -p "$REDIS_PORT" del "$BAD" > /dev/null
ok $? "$BAD deleted"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the daemon goes on: $n_want outcomes out"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

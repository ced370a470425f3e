#!/bin/sh
# daemon_lag_order.sh -- order under lag (issue 13): one partition pair's
# subscriptions side is slow to fetch, its first Fetch answered 40 s late
# (mock-cluster --fetch-delay), while its relationships side and the other
# pairs flow.  The merge must wait for that side for as long as it is behind
# the broker's end, past the 30 s it once gave up after, and the outcomes
# must be replay's for the same events, each once.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_LAG_EVENTS:-2000}
DELAY=${MCD_LAG_DELAY_MS:-40000}
SLOW=2
REL_TOPIC=partnercenter.relationships.v1
SUB_TOPIC=partnercenter.subscriptions.v1

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 4 --fetch-delay "$SUB_TOPIC:$SLOW:$DELAY"
ok $? "mock cluster at $BOOTSTRAP, the first fetch of $SUB_TOPIC [$SLOW] answered $((DELAY / 1000)) s late"
METRICS=127.0.0.1:$(free_port)
write_config "$TMP/mcd.conf" "metrics.listen = $METRICS"
future_stream 13 "$EVENTS" 200 "$TMP/in.jsonl"
n_in=$(wc -l < "$TMP/in.jsonl")
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
$MCD replay --now "$now" --state-out "$TMP/want_states" "$TMP/in.jsonl" | strip_messages > "$TMP/want"
n_want=$(wc -l < "$TMP/want")
publish_events "$TMP/in.jsonl"
ok $? "published $n_in events, both topics, before the daemon starts"

start=$(date +%s)
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until $((DELAY / 1000 + 120)) inputs_applied "$METRICS" "$n_in"
ok $? "daemon applied all $n_in events in $(($(date +%s) - start)) s"

# The fault, seen from the daemon: the slow pair's relationships waited for
# its subscriptions, logged while they did, and the wait ended once they came.
grep "have waited\|merging again" "$TMP/daemon.log" | sed 's/^.*\(partition\)/\1/' | diag
grep -q "partition $SLOW: [0-9]* messages of $REL_TOPIC have waited [0-9]* s for $SUB_TOPIC" "$TMP/daemon.log"
ok $? "the wait for $SUB_TOPIC [$SLOW] was logged while it lasted, relationships buffered"
waited=$(sed -n "s/.*partition $SLOW: merging again after waiting \([0-9]*\) s for $SUB_TOPIC.*/\1/p" \
        "$TMP/daemon.log" | head -1)
[ "${waited:-0}" -gt 30 ]
ok $? "the slow pair merged again after waiting ${waited:-?} s for it, more than 30 s"

wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka \|have waited" | sort | uniq -c | sort -rn | head -6 | diag
tap_done

#!/bin/sh
# daemon_lag_caught_up.sh -- order when a side that had caught up falls
# behind.  One pair's subscriptions partition is read to its end; then its
# broker holds back its next Fetch answer for DELAY ms (SIGHUP to
# mock-cluster --fetch-delay) while the stream's second half is published,
# in order.  The high watermark of that side's last fetch answer still says
# it is at its end: only the broker knows it is not.  The merge must ask it
# before going on after merge_wait, wait for the held answer, and give
# replay's outcomes for the whole stream, each once.  (Before it asked,
# five outcomes differed from replay's: events of the held partition were
# overtaken.)
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_LAG_EVENTS:-2000}
DELAY=${MCD_LAG_DELAY_MS:-10000}
SLOW=2
SUB_TOPIC=partnercenter.subscriptions.v1

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 4 --fetch-delay "$SUB_TOPIC:$SLOW:$DELAY"
ok $? "mock cluster at $BOOTSTRAP, $SUB_TOPIC [$SLOW] on a broker of its own that holds a Fetch answer $((DELAY / 1000)) s"
METRICS=127.0.0.1:$(free_port)
write_config "$TMP/mcd.conf" "metrics.listen = $METRICS"
future_stream 29 "$EVENTS" 200 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
n_in=$(wc -l < "$TMP/in.jsonl")
half=$((n_in / 2))
head -n "$half" "$TMP/in.jsonl" > "$TMP/part1"
tail -n +"$((half + 1))" "$TMP/in.jsonl" > "$TMP/part2"

publish_events "$TMP/part1"
ok $? "published the first $half events"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until $((DELAY / 1000 + 120)) inputs_applied "$METRICS" "$half"
ok $? "daemon applied them (the first Fetch of $SUB_TOPIC [$SLOW] held too)"
sleep 1         # both sides of every pair at their end, fetched again since

# The fault: the slow partition's next Fetch answer is held back, and the
# second half is in Kafka before that answer comes.
held() { [ "$(grep -c "answers its next Fetch $DELAY ms late" "$TMP/mock.log")" -ge 2 ]; }  # the start's, then SIGHUP's
kill -HUP "$KAFKA_PID"
wait_until 10 held
ok $? "the mock holds back the next Fetch answer of $SUB_TOPIC [$SLOW] (SIGHUP)"
held_at=$(date +%s)
sleep 1         # the Fetch in flight answered, the next one sent and held
publish_events "$TMP/part2"
ok $? "published the other $((n_in - half)) events, in order, while it is held"
took=$(($(date +%s) - held_at))
[ "$took" -lt $((DELAY / 1000 - 1)) ]
ok $? "the second half was in Kafka ${took} s after the hold began, before the held answer ($((DELAY / 1000)) s)"

wait_until $((DELAY / 1000 + 120)) inputs_applied "$METRICS" "$n_in"
ok $? "daemon applied all $n_in events"
grep "broker's end\|merging again" "$TMP/daemon.log" | sed 's/^.*\(partition\)/\1/' | head -5 | diag
grep -q "partition $SLOW: $SUB_TOPIC read to offset [0-9]*, the broker's end is [0-9]*" "$TMP/daemon.log"
ok $? "the merge found $SUB_TOPIC [$SLOW] behind the broker's end where its last fetch answer said caught up"

wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

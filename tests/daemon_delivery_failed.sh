#!/bin/sh
# daemon_delivery_failed.sh -- outcomes whose delivery failed though they
# are on the topic.  The broker of one outcomes partition appends the first
# Produce request it gets but holds its answer DELAY ms, past the
# producer's message.timeout.ms: the frames in it fail (timed out, possibly
# persisted) while the topic holds them.  Producing them again would publish
# them twice (librdkafka's idempotence covers its own retries, not a second
# produce); the daemon claims their input partitions again instead, and
# reconciliation finds them on the topic.  The outcome topic must hold
# replay's outcomes, each once.  (Before, the failed frames were produced
# again: this test then found them twice.)
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_DF_EVENTS:-400}
DELAY=8000
TIMEOUT=3000
OUT_TOPIC=$(outcome_topic)       # the default: the configuration is written below
SLOW=1

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 4 --produce-delay "$OUT_TOPIC:$SLOW:$DELAY"
ok $? "mock cluster at $BOOTSTRAP, $OUT_TOPIC [$SLOW] on a broker of its own that holds a Produce answer $((DELAY / 1000)) s"
METRICS=127.0.0.1:$(free_port)
write_config "$TMP/mcd.conf" "metrics.listen = $METRICS" "kafka.message.timeout.ms = $TIMEOUT"
future_stream 31 "$EVENTS" 100 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
n_in=$(wc -l < "$TMP/in.jsonl")
publish_events "$TMP/in.jsonl"
ok $? "published $n_in events"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 120 inputs_applied "$METRICS" "$n_in"
ok $? "daemon applied all $n_in events"

# The fault: the held Produce answer, and frames failed by it.
grep -q "answers its next Produce $DELAY ms late" "$TMP/mock.log"
ok $? "the mock holds back the answer of the first Produce to $OUT_TOPIC [$SLOW]"
failed() { grep -q "delivery to $OUT_TOPIC failed" "$TMP/daemon.log"; }
wait_until 60 failed
ok $? "deliveries of outcomes failed, timed out after $((TIMEOUT / 1000)) s"
grep "delivery to\|delivery failed\|reconciling" "$TMP/daemon.log" | sed 's/^.*\(partition\|delivery\)/\1/' | sort | uniq -c | head -6 | diag
grep -q "an outbox frame's delivery failed; claimed again" "$TMP/daemon.log"
ok $? "their input partitions were claimed again, not produced again"

wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep $((DELAY / 1000))         # the held answer is in; nothing more to come
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

#!/bin/sh
# daemon_outages.sh -- Redis and Kafka unreachable for a while: the daemon
# keeps running, logs clearly, pauses, retries with backoff, and resumes
# without loss once they are back.  Redis keeps its data here (AOF, restarted
# on the same port); the Kafka brokers are taken down and up again
# (mock-cluster: SIGUSR1, SIGUSR2).
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_OUTAGE_EVENTS:-3000}
start_redis; ok $? "redis-server started on port $REDIS_PORT (AOF on)"
start_kafka 4; ok $? "mock cluster started at $BOOTSTRAP"
METRICS=127.0.0.1:$(free_port)
write_config "$TMP/mcd.conf" "batch.max_events = 30" "batch.wait = 10ms" "metrics.listen = $METRICS"
"$MCD_BUILDDIR/tests/gen_events" -s 41 -n "$EVENTS" -c 200 | sort_by_time > "$TMP/in.jsonl"
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
$MCD replay --now "$now" --state-out "$TMP/want_states" "$TMP/in.jsonl" | strip_messages > "$TMP/want"
"$MCD_BIN" publish -c "$TMP/mcd.conf" "$TMP/in.jsonl" 2> "$TMP/publish.err"
ok $? "published $EVENTS events"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" 200
ok $? "daemon is processing"

# Redis down for 5 s, its data kept.
redis-cli -p "$REDIS_PORT" shutdown > /dev/null 2>&1      # AOF flushed first
wait "$REDIS_PID" 2>/dev/null
sleep 5
kill -0 "$DAEMON_PID"
ok $? "daemon keeps running while Redis is down"
grep -q "Redis at 127.0.0.1:$REDIS_PORT unreachable" "$TMP/daemon.log"
ok $? "daemon logs that Redis is unreachable and consumption paused"
start_redis "$REDIS_PORT"
ok $? "Redis back on the same port with its data (AOF)"
wait_until 30 grep -q "Redis at 127.0.0.1:$REDIS_PORT answers" "$TMP/daemon.log"
ok $? "daemon reconnects to Redis"

# Kafka brokers down for 8 s.
kill -USR1 "$KAFKA_PID"
sleep 8
kill -0 "$DAEMON_PID"
ok $? "daemon keeps running while Kafka is down"
grep -q "broker(s) down" "$TMP/mock.log"
ok $? "the brokers were down"
grep -qi "kafka .*\(refused\|down\|disconnect\)" "$TMP/daemon.log"
ok $? "daemon logs that Kafka is unreachable"
kill -USR2 "$KAFKA_PID"

wait_until 240 outcomes_at_least "$TMP/mcd.conf" "$(wc -l < "$TMP/want")"
ok $? "daemon carries on to the end"
sleep 3
assert_exactly_once "$TMP/mcd.conf" ""
# A batch undone while Kafka was down, or not committed while Redis was, is
# read again: the metrics count each event once all the same.
counted=$("$MCD_BUILDDIR/tests/http_get" "$METRICS" /metrics |
        awk '$1 ~ /^multichanneld_(events|dead_letters)_total/ { s += $NF } END { printf "%.0f\n", s }')
[ "$counted" = "$EVENTS" ]
ok $? "the metrics count every event once ($counted of $EVENTS, undone batches taken back)"
grep -c "batch is undone\|batch not committed" "$TMP/daemon.log" | sed 's/^/batches undone or not committed: /' | diag
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
ok $? "daemon exits 0 on SIGTERM"
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka " | sed 's/\[[0-9]*\]//' | sort | uniq -c | sort -rn | head -6 | diag
tap_done

#!/bin/sh
# daemon_outages.sh -- Redis and Kafka unreachable for a while: the daemon
# keeps running, logs clearly, pauses, retries with backoff, and resumes
# without loss once they are back.  Redis keeps its data here (AOF, restarted
# on the same port); the Kafka brokers are taken down and up again
# (mock-cluster: SIGUSR1, SIGUSR2).  First at start-up: the daemon started
# while the brokers are down waits for them (its reads of the topics'
# partitions retried, each retry logged, the watchdog kept alive: its own
# NOTIFY_SOCKET, tests/notify_listen, with WATCHDOG_USEC) instead of exiting.
. "$MCD_SRCDIR/tests/lib.sh"

WATCHDOG_USEC=2000000

EVENTS=${MCD_OUTAGE_EVENTS:-3000}
METRICS=127.0.0.1:$(free_port)
start_services 4 "batch.max_events = 30" "batch.wait = 10ms" "metrics.listen = $METRICS"
current_stream 41 "$EVENTS" 200 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published $EVENTS events"

# Kafka's brokers down at start-up.
kill -USR1 "$KAFKA_PID"
wait_until 10 grep -q "broker(s) down" "$TMP/mock.log"
ok $? "the brokers are down before the daemon starts"
"$MCD_BUILDDIR/tests/notify_listen" -t "$TMP/notify.sock" > "$TMP/notify.log" 2> "$TMP/notify.err" &
PIDS="$PIDS $!"
wait_until 10 test -S "$TMP/notify.sock"
NOTIFY_SOCKET="$TMP/notify.sock" WATCHDOG_USEC=$WATCHDOG_USEC start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
retries() { [ "$(grep -c "cannot read its partitions .*retrying in" "$TMP/daemon.log")" -ge "$1" ]; }
wait_until 60 retries 3
ok $? "daemon logs each retry of reading the topics' partitions ($(grep -c "retrying in" "$TMP/daemon.log") so far)"
grep "cannot read its partitions" "$TMP/daemon.log" | head -2 | sed 's/^.*\] *//' | diag
sleep 2
kill -0 "$DAEMON_PID"
ok $? "daemon keeps running while the brokers are down at start-up"
# WATCHDOG=1 all along the wait: no gap of WATCHDOG_USEC between two.
gap=$(awk '/WATCHDOG=1/ { if (last) { g = $1 - last; if (g > max) max = g } last = $1; n++ }
           END { printf "%d %d\n", n, max }' "$TMP/notify.log")
[ "${gap% *}" -ge 3 ] && [ "${gap#* }" -lt "$WATCHDOG_USEC" ]
ok $? "the watchdog is kept alive meanwhile (WATCHDOG=1 count and largest gap in us: $gap)"
kill -USR2 "$KAFKA_PID"
wait_until 60 grep -q "partitions, after [0-9]* failed attempt" "$TMP/daemon.log"
ok $? "once the brokers are up, the daemon reads the partitions and goes on"
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

wait_until 240 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon carries on to the end"
sleep 3
assert_exactly_once "$TMP/mcd.conf" ""
# A batch undone while Kafka was down, or not committed while Redis was, is
# read again: the metrics count each event once all the same.
counted=$(inputs_counted "$METRICS")
[ "$counted" = "$EVENTS" ]
ok $? "the metrics count every event once ($counted of $EVENTS, undone batches taken back)"
grep -c "batch is undone\|batch not committed" "$TMP/daemon.log" | sed 's/^/batches undone or not committed: /' | diag
stop_daemon_ok
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka " | sed 's/\[[0-9]*\]//' | sort | uniq -c | sort -rn | head -6 | diag

# A configuration error still exits at start-up: input topics that are not
# co-partitioned.  (The mock cluster creates a topic it is asked about with
# 4 partitions; this one is started with 3.)
start_kafka 3; ok $? "a second mock cluster, 3 partitions per topic, at $BOOTSTRAP"
write_config "$TMP/copart.conf" "topic.subscriptions = partnercenter.other.v1"
timeout 120 $MCD run -c "$TMP/copart.conf" > /dev/null 2> "$TMP/copart.log"
rc=$?
grep -q "input topics are not co-partitioned: partnercenter.relationships.v1 has 3 partitions, partnercenter.other.v1 has 4" \
        "$TMP/copart.log" && [ $rc -eq 1 ]
ok $? "input topics of 3 and 4 partitions: the daemon says so and exits 1 (got $rc)"
tap_done

#!/bin/sh
# daemon_redis_loss.sh -- Redis restarted empty (its disk lost) in the middle
# of a run: the daemon notices, rebuilds the customers' state from the
# changelog topic, and carries on.  At the end the outcome topic holds
# exactly replay's outcomes, each once, and Redis replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_LOSS_EVENTS:-5000}
start_redis; ok $? "redis-server started on port $REDIS_PORT (AOF on)"
start_kafka 4; ok $? "mock cluster started at $BOOTSTRAP"
write_config "$TMP/mcd.conf" "batch.max_events = 40" "batch.wait = 10ms"

# Events of 2031 (future_stream in lib.sh), published in two halves: Redis is
# lost between them, so the daemon meets the loss with input still to come
# however fast it went through the first half.
future_stream 11 "$EVENTS" 300 "$TMP/in.jsonl"
$MCD replay --state-out "$TMP/want_states" "$TMP/in.jsonl" | strip_messages > "$TMP/want"
n_want=$(wc -l < "$TMP/want")
half=$(($(wc -l < "$TMP/in.jsonl") / 2))
head -n "$half" "$TMP/in.jsonl" > "$TMP/part1"
tail -n +"$((half + 1))" "$TMP/in.jsonl" > "$TMP/part2"
"$MCD_BIN" publish -c "$TMP/mcd.conf" "$TMP/part1" 2> "$TMP/publish.err"
ok $? "published the first half of $EVENTS events ($n_want outcomes expected in all)"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" 300
ok $? "daemon is processing"

kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
rm -rf "$TMP/redis"
before=$(count_outcomes "$TMP/mcd.conf")
start_redis "$REDIS_PORT"
ok $? "Redis restarted empty on the same port after $before outcomes"
"$MCD_BIN" publish -c "$TMP/mcd.conf" "$TMP/part2" 2>> "$TMP/publish.err"
ok $? "published the second half"

wait_until 300 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the daemon carries on to the end"
sleep 3
grep -q "restored .* from the changelog" "$TMP/daemon.log"
ok $? "the daemon rebuilt its state from the changelog"
assert_exactly_once "$TMP/mcd.conf" ""
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
ok $? "daemon exits 0 on SIGTERM"
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka " | sort | uniq -c | sort -rn | head -8 | diag
tap_done

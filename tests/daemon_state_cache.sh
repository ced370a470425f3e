#!/bin/sh
# daemon_state_cache.sh -- the in-process state cache (state_cache.h) is
# used, and is dropped when its partition changes hands.  Instance A alone
# processes a first part of a stream of few customers (their states come
# from its cache); B joins and takes a partition, and processes a second
# part, which changes the states of customers A held; B leaves, A takes the
# partition back and processes the rest.  Had A kept its states of that
# partition, its outcomes and Redis's final states would not be replay's.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_CACHE_EVENTS:-1500}
PORT_A=$(free_port)
PORT_B=$(free_port)
start_services 2 "batch.max_events = 20" "batch.wait = 10ms" "merge_wait = 2s"
write_config "$TMP/a.conf" "batch.max_events = 20" "batch.wait = 10ms" "merge_wait = 2s" \
        "cache.max_bytes = 4194304" "metrics.listen = 127.0.0.1:$PORT_A"
write_config "$TMP/b.conf" "batch.max_events = 20" "batch.wait = 10ms" "merge_wait = 2s" \
        "cache.max_bytes = 4194304" "metrics.listen = 127.0.0.1:$PORT_B"

metric() {  # metric PORT NAME: a counter's value (0 when unreadable)
        "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$1" /metrics 2>/dev/null |
                awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}
consumed() {  # consumed N: Redis's stored offsets say N input messages were processed
        [ "$(offsets_sum)" -ge "$1" ]
}

# 40 customers, so each comes back batch after batch; three parts.
future_stream 41 "$EVENTS" 40 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
split_thirds "$TMP/in.jsonl"

# 1. A alone: the customers' states come from its cache after their first load.
publish_events "$TMP/part1"
ok $? "first part published ($third events)"
start_daemon "$TMP/a.conf" "$TMP/a.log"; A=$DAEMON_PID
wait_until 60 consumed "$third"
ok $? "instance A alone processed the first part"
hits=$(metric "$PORT_A" multichanneld_state_cache_hits_total)
misses=$(metric "$PORT_A" multichanneld_state_cache_misses_total)
ok $([ "$hits" -gt 0 ]; echo $?) "A found its customers in its state cache: $hits hits, $misses loads from Redis"

# 2. B joins and takes one partition; what A held of it is dropped.
start_daemon "$TMP/b.conf" "$TMP/b.log"; B=$DAEMON_PID
wait_until 60 grep -q "states dropped from the state cache" "$TMP/a.log"
ok $? "A gave a partition to B and dropped its customers' states"
grep "states dropped from the state cache" "$TMP/a.log" | diag
moved=$(sed -n 's/.*partition \([0-9]*\): [0-9]* customers. states dropped.*/\1/p' "$TMP/a.log" | head -1)
wait_until 60 daemon_ready "$TMP/b.log"
ok $? "instance B is ready"
publish_events "$TMP/part2"
ok $? "second part published"
wait_until 60 consumed "$((2 * third))"
ok $? "the two instances processed the second part"
b_loads=$(( $(metric "$PORT_B" multichanneld_state_cache_hits_total) + $(metric "$PORT_B" multichanneld_state_cache_misses_total) ))
ok $([ "$b_loads" -gt 0 ]; echo $?) "B processed customers of partition $moved ($b_loads customer loads)"

# 3. B leaves; A takes the partition back and processes the rest.
kill -TERM "$B"
wait "$B"
ok $? "instance B exits 0 on SIGTERM"
publish_events "$TMP/part3"
ok $? "last part published"
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "A processed the rest ($n_want outcomes in all)"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
kill -TERM "$A"
wait "$A"
ok $? "instance A exits 0 on SIGTERM"
ok $([ "$(grep -c "partition $moved ready at" "$TMP/a.log")" -ge 2 ]; echo $?) "A owned partition $moved again after B left"
tap_done

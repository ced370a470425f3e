#!/bin/sh
# daemon_cache_reload.sh -- cache.max_bytes changed by SIGHUP (worker.c
# reload_cache) applies at once and loses nothing.  One instance processes a
# stream of few customers in four parts: the first without a cache (no hit,
# no miss counted); SIGHUP with 4 MiB makes the cache, and the second part
# finds its customers in it (the partitions already owned were opened in
# it); SIGHUP with 12 KiB shrinks it, and the third part keeps it within
# that; SIGHUP with 0 drops it (its bytes 0 at once), and the last part
# counts no hit.  The outcomes and Redis's states are replay's.
. "$MCD_SRCDIR/tests/lib.sh"

PORT=$(free_port)
start_services 2 "batch.max_events = 20" "batch.wait = 10ms"
conf() {  # conf MAX_BYTES: the instance's configuration, cache.max_bytes = MAX_BYTES
        write_config "$TMP/a.conf" "batch.max_events = 20" "batch.wait = 10ms" \
                "cache.max_bytes = $1" "metrics.listen = 127.0.0.1:$PORT"
}
metric() {  # metric NAME: the instance's value of NAME (0 when unreadable)
        "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$PORT" /metrics 2>/dev/null |
                awk -v n="$1" '$1 == n { v = $2 } END { print v + 0 }'
}
consumed() {  # consumed N: Redis's stored offsets say N input messages were processed
        [ "$(offsets_sum)" -ge "$1" ]
}
reload() {  # reload MAX_BYTES: the configuration rewritten, SIGHUP, the change logged
        conf "$1"
        kill -HUP "$A"
        wait_until 30 grep -q "reload: cache.max_bytes [0-9]* -> $1\$" "$TMP/a.log"
}

future_stream 43 "${MCD_CACHE_EVENTS:-1600}" 40 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
n=$(wc -l < "$TMP/in.jsonl")
quarter=$((n / 4))
split -l "$quarter" -d -a 1 "$TMP/in.jsonl" "$TMP/part"   # part0..part3 (part4: the remainder, if any)
cat "$TMP"/part4 >> "$TMP/part3" 2>/dev/null; rm -f "$TMP/part4"

# 1. No cache: nothing found in it, nothing counted as missed.
conf 0
start_daemon "$TMP/a.conf" "$TMP/a.log"; A=$DAEMON_PID
publish_events "$TMP/part0"
wait_until 60 consumed "$quarter"
ok $? "the first part processed without a cache"
ok $([ "$(metric multichanneld_state_cache_hits_total)" -eq 0 ] &&
     [ "$(metric multichanneld_state_cache_misses_total)" -eq 0 ]; echo $?) "no hit and no miss counted"

# 2. Made by SIGHUP: the partitions owned are open in it, their customers enter.
reload 4194304
ok $? "SIGHUP: the cache made (cache.max_bytes 0 -> 4194304 logged)"
publish_events "$TMP/part1"
wait_until 60 consumed "$((2 * quarter))"
ok $? "the second part processed"
hits=$(metric multichanneld_state_cache_hits_total)
ok $([ "$hits" -gt 0 ]; echo $?) "its customers found in the cache made by the reload ($hits hits)"

# 3. Shrunk by SIGHUP: within the new bound.
reload 12288
ok $? "SIGHUP: the cache shrunk to 12 KiB (its table takes 8)"
ok $([ "$(metric multichanneld_state_cache_bytes)" -le 12288 ]; echo $?) \
        "at once within it ($(metric multichanneld_state_cache_bytes) bytes)"
publish_events "$TMP/part2"
wait_until 60 consumed "$((3 * quarter))"
ok $? "the third part processed"
bytes=$(metric multichanneld_state_cache_bytes)
ok $([ "$bytes" -le 12288 ] && [ "$bytes" -gt 8192 ]; echo $?) "the cache stays within 12 KiB and holds customers ($bytes bytes)"

# 4. Dropped by SIGHUP: no bytes, no more hits.
reload 0
ok $? "SIGHUP: the cache dropped"
ok $([ "$(metric multichanneld_state_cache_bytes)" -eq 0 ]; echo $?) "its bytes are 0 at once"
hits=$(metric multichanneld_state_cache_hits_total)
publish_events "$TMP/part3"
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the last part processed ($n_want outcomes in all)"
ok $([ "$(metric multichanneld_state_cache_hits_total)" -eq "$hits" ]; echo $?) "no hit counted without the cache"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
kill -TERM "$A"
wait "$A"
ok $? "the instance exits 0 on SIGTERM"
tap_done

#!/bin/sh
# daemon_changelog_stop.sh -- a changelog append that fails stops its
# partition instead of letting the changelog fall behind Redis unnoticed:
# with the producers' message.max.bytes cut to 4,000 bytes, a customer whose
# state grows past it makes the append fail (librdkafka refuses the record);
# the log names the partition, /healthz answers 503 with the reason, the
# metric counts it, and the partition commits nothing more while the fault
# lasts.  Restarted with the default size, the daemon goes on from Redis and
# the outcome topic equals replay's outcomes, each once.
. "$MCD_SRCDIR/tests/lib.sh"

METRICS_PORT=$(free_port)
start_services 2 "metrics.listen = 127.0.0.1:$METRICS_PORT"
write_config "$TMP/small.conf" "metrics.listen = 127.0.0.1:$METRICS_PORT" "kafka.message.max.bytes = 4000"

# 40 subscriptions of 120-byte ids for one customer: about 6 KB of state.
pad=$(printf '%0100d' 0)
sub_event() {  # sub_event N: SubscriptionReported number N of customer c-big
        printf '{"event_id":"big-%d","occurred_at":"2031-01-01T00:%02d:%02d.000Z","customer_id":"c-big","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"sub-%s-%04d","offer_name":"Azure","billing":"USAGE_BASED","channel":"DIRECT"}\n' \
                "$1" $(($1 / 60)) $(($1 % 60)) "$pad" "$1"
}
i=0; while [ $i -lt 40 ]; do sub_event $i; i=$((i + 1)); done > "$TMP/wave1.jsonl"
while [ $i -lt 50 ]; do sub_event $i; i=$((i + 1)); done > "$TMP/wave2.jsonl"
cat "$TMP/wave1.jsonl" "$TMP/wave2.jsonl" > "$TMP/all.jsonl"
expect_replay "$TMP/all.jsonl"
n_wave1=$(wc -l < "$TMP/wave1.jsonl")

publish_events "$TMP/wave1.jsonl"
ok $? "published the first 40 events"
start_daemon "$TMP/small.conf" "$TMP/daemon.1.log"
wait_until 60 grep -q "cannot append to the changelog.*stops committing" "$TMP/daemon.1.log"
ok $? "the failed append is logged, naming the partition and that it stops"
grep "cannot append to the changelog" "$TMP/daemon.1.log" | head -2 | diag
wait_until 20 sh -c "\"$MCD_BUILDDIR/tests/http_get\" 127.0.0.1:$METRICS_PORT /healthz 2>/dev/null | grep -q 'changelog append failed'"
ok $? "/healthz answers 503 with the reason"
"$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /metrics 2>/dev/null |
        grep -q '^multichanneld_changelog_stopped_partitions 1$'
ok $? "multichanneld_changelog_stopped_partitions is 1"
off_before=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:off:*' | sort | xargs -r -n1 redis-cli -p "$REDIS_PORT" hgetall | tr '\n' ' ')
n_before=$(count_outcomes "$TMP/mcd.conf")
ok $([ "$n_before" -eq "$n_wave1" ]; echo $?) "the batch whose append failed was committed and published ($n_before of $n_wave1 outcomes)"

publish_events "$TMP/wave2.jsonl"
sleep 4
n_after=$(count_outcomes "$TMP/mcd.conf")
off_after=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:off:*' | sort | xargs -r -n1 redis-cli -p "$REDIS_PORT" hgetall | tr '\n' ' ')
ok $([ "$n_after" -eq "$n_before" ] && [ "$off_after" = "$off_before" ]; echo $?) \
        "while stopped, nothing more is committed or published ($n_after outcomes; offsets '$off_after')"
# Each batch of c-big's partition appends c-big's record and the offsets
# record.  The failed batch's offsets record, and any later one, must not
# be appended past the failed customer: a rebuild from the changelog would
# restore offsets past c-big's events, which it would then never apply.
kcat -C -b "$BOOTSTRAP" -t partnercenter.multichannel.changelog.v1 -e -q -f '%k\n' > "$TMP/clog_keys" 2> "$TMP/kcat.err"
n_off=$(grep -c '^__offsets__:' "$TMP/clog_keys")
n_big=$(grep -c '^c-big$' "$TMP/clog_keys")
ok $([ "$n_off" -eq "$n_big" ]; echo $?) \
        "the changelog holds no offsets record past the failed customer ($n_off offsets records, $n_big of c-big)"
stop_daemon_ok

start_daemon "$TMP/mcd.conf" "$TMP/daemon.2.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "restarted with the default size, the daemon catches up"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
n_err=$(grep -c "cannot append to the changelog" "$TMP/daemon.2.log")
ok $([ "$n_err" -eq 0 ]; echo $?) "no append fails with the default size"
stop_daemon_ok
tap_done

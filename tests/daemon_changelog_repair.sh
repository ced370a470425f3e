#!/bin/sh
# daemon_changelog_repair.sh -- a changelog append that failed is made good
# when its partition is claimed again, so that a Redis rebuilt from the
# changelog is not older than the one it replaces.  With the producers'
# message.max.bytes cut to 4,000 bytes, customer c-big's state (about 6 KB)
# cannot be appended: its partition stops (daemon_changelog_stop.sh), while
# the partition's offsets record, past c-big's events, is appended.
# Restarted with the default size, the daemon appends c-big's state as Redis
# holds it on claiming the partition; no event of c-big comes after, which
# would have appended it anyway.  Then Redis is lost with its disk: the
# rebuild from the changelog must give replay's states.  (Before, the
# failed record was never appended again, and c-big came back without a
# state while the offsets said its events were processed.)
. "$MCD_SRCDIR/tests/lib.sh"

METRICS_PORT=$(free_port)
start_services 2 "metrics.listen = 127.0.0.1:$METRICS_PORT"
write_config "$TMP/small.conf" "metrics.listen = 127.0.0.1:$METRICS_PORT" "kafka.message.max.bytes = 4000"

# 40 subscriptions of 120-byte ids for one customer: about 6 KB of state.
pad=$(printf '%0100d' 0)
i=0
while [ $i -lt 40 ]; do
        printf '{"event_id":"big-%d","occurred_at":"2031-01-01T00:%02d:%02d.000Z","customer_id":"c-big","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"sub-%s-%04d","offer_name":"Azure","billing":"USAGE_BASED","channel":"DIRECT"}\n' \
                "$i" $((i / 60)) $((i % 60)) "$pad" "$i"
        i=$((i + 1))
done > "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published 40 events of c-big"

start_daemon "$TMP/small.conf" "$TMP/daemon.1.log"
wait_until 60 grep -q "cannot append to the changelog.*stops committing" "$TMP/daemon.1.log"
ok $? "daemon 1: c-big's changelog append failed (message.max.bytes), its partition stopped"
wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon 1: the batch was committed and published ($n_want outcomes)"
stop_daemon_ok "daemon 1: "

start_daemon "$TMP/mcd.conf" "$TMP/daemon.2.log"
wait_until 60 grep -q "appended again [0-9]* changelog record" "$TMP/daemon.2.log"
ok $? "daemon 2: on claiming the partition, the failed record appended again"
grep "appended again\|cannot append" "$TMP/daemon.2.log" | sed 's/^.*\(partition\)/\1/' | diag
assert_exactly_once "$TMP/mcd.conf" "before Redis is lost: "

lose_redis
start_redis "$REDIS_PORT"
ok $? "Redis lost with its disk, restarted empty"
wait_until 60 grep -q "restored .* from the changelog" "$TMP/daemon.2.log"
ok $? "daemon 2 rebuilt its partitions from the changelog"
grep "restored .* from the changelog" "$TMP/daemon.2.log" | sed 's/^.*\(partition\)/\1/' | diag
sleep 2
assert_exactly_once "$TMP/mcd.conf" "after the rebuild: "
stop_daemon_ok "daemon 2: "
tap_done

#!/bin/sh
# daemon_fetch_stall.sh -- a fetcher librdkafka stopped is woken (issue 12,
# intake.c wake_stalled).  librdkafka 2.0 stops fetching a partition while
# its handle's queue is over queued.max.messages.kbytes and decides again
# only when its broker thread next wakes, up to a second later.  Here the
# daemon's own buffer is small (buffer.max_events 200, batches of 100), so it
# leaves messages in librdkafka's queue, and that queue is tiny (16 KiB, 4
# KiB a partition a fetch): it fills, every partition stops being fetched,
# and the merge keeps waiting for sides nobody fetches.  The daemon must
# wake their fetchers (multichanneld_fetch_wakeups_total counts
# it: the fault happened and was met), and the outcomes and states must
# still be replay's, each outcome once.  How much faster that makes it is
# the benchmark's (tests/bench/run.sh), not a timed test's.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_STALL_EVENTS:-6000}
METRICS=127.0.0.1:$(free_port)
start_services 4 "metrics.listen = $METRICS" "batch.max_events = 100" "buffer.max_events = 200" \
        "kafka.queued.max.messages.kbytes = 16" "kafka.max.partition.fetch.bytes = 4096"

future_stream 21 "$EVENTS" 300 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published $(wc -l < "$TMP/in.jsonl") events over 300 customers, before the daemon starts"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 300 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the daemon produces all $n_want outcomes"

wakeups=$("$MCD_BUILDDIR/tests/http_get" "$METRICS" /metrics 2>/dev/null |
        awk '$1 == "multichanneld_fetch_wakeups_total" { print $2 }')
[ "${wakeups:-0}" -gt 0 ]
ok $? "the merge woke stopped fetchers (${wakeups:-no} wake-ups)"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

#!/bin/sh
# daemon_push_enomem.sh -- a committed batch whose outcomes cannot be queued
# for the producer (out of memory, injected by MCD_FAULT_PUSH_ENOMEM at the
# third batch: each partition with two outcomes or more fails at its
# second).  The partitions concerned start again and publish the batch's
# outcomes from their outboxes in Redis.  The test first shows the fault
# happened and the outboxes were reconciled, then that the outcome topic
# holds replay's outcomes, each once, and Redis replay's final states.
# Before, the frames stayed in the outboxes until the partition next
# started, and the topic lacked them.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_PUSH_ENOMEM_EVENTS:-2000}
start_services 4 "batch.max_events = 200" "batch.wait = 10ms"
current_stream 23 "$EVENTS" 150 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published $EVENTS events ($n_want outcomes in replay)"

export MCD_FAULT_PUSH_ENOMEM=3
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
unset MCD_FAULT_PUSH_ENOMEM
wait_until 60 grep -q "out of memory queueing the outcomes of batch 3" "$TMP/daemon.log"
ok $? "batch 3's outcomes could not be queued: $(grep -c "out of memory queueing" "$TMP/daemon.log") partition(s) started again"
grep "out of memory queueing" "$TMP/daemon.log" | head -2 | sed "s/^[^:]*: //" | diag
wait_until 60 grep -q "reconciling [0-9]* outbox frames" "$TMP/daemon.log"
ok $? "their outboxes were reconciled with the output topics"
grep "reconciling" "$TMP/daemon.log" | head -2 | sed "s/^[^:]*: //" | diag
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the whole stream processed"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

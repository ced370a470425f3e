#!/bin/sh
# daemon_scenarios.sh -- the shared scenarios through the real daemon: a
# redis-server on a free loopback port, a Kafka mock cluster in its own
# process, the scenarios published as Avro; the outcome topic must hold
# exactly the outcomes replay gives for the same input, each once, and Redis
# the same customer states.
. "$MCD_SRCDIR/tests/lib.sh"

start_services 4

# In timestamp order, as the contract's merge promises replay's outcomes for.
for f in "$MCD_SRCDIR"/tests/scenarios/*.jsonl; do
        case $f in *.expected.jsonl) ;; *) cat "$f" ;; esac
done | sort_by_time > "$TMP/in.jsonl"
n_in=$(wc -l < "$TMP/in.jsonl")
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"

publish_events "$TMP/in.jsonl"
ok $? "published $n_in events as Avro"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end > "$TMP/got.raw"
grep -c '"message":""' "$TMP/got.raw" > /dev/null
ok $([ $? -ne 0 ]; echo $?) "every outcome has a message"
assert_outcomes "$TMP/got.raw" ""

"$MCD_BIN" state -c "$TMP/mcd.conf" tenant-wingtip > "$TMP/state" 2>&1
grep -q '"state": "MIGRATED"' "$TMP/state"
ok $? "multichanneld state shows the customer's state from Redis"

kill -TERM "$DAEMON_PID"
wait_until 20 sh -c "! kill -0 $DAEMON_PID"
ok $? "daemon stops on SIGTERM"
wait "$DAEMON_PID"
ok $? "daemon exits 0 after SIGTERM"
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka " | diag
tap_done

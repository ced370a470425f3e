#!/bin/sh
# daemon_crash.sh -- exactly once across crashes: the daemon is killed with
# SIGKILL at random points while it processes thousands of events, and
# restarted each time.  At the end every outcome is on the outcome topic
# exactly once (the topic equals replay's outcomes for the same input) and
# Redis holds replay's final state for every customer.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_CRASH_EVENTS:-3000}
KILLS=${MCD_CRASH_KILLS:-6}
start_services 4 "batch.max_events = 40" "batch.wait = 10ms"

current_stream 7 "$EVENTS" 250 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published $EVENTS events ($n_want outcomes expected)"

seed=$$
i=0
seen=0
while [ $i -lt "$KILLS" ]; do
        i=$((i + 1))
        start_daemon "$TMP/mcd.conf" "$TMP/daemon.$i.log"
        wait_until 60 daemon_ready "$TMP/daemon.$i.log"
        # A random point once the restarted daemon is making progress again.
        wait_until 30 outcomes_at_least "$TMP/mcd.conf" $((seen + 1))
        seed=$(( (seed * 1103515245 + 12345) % 2147483648 ))
        sleep "0.$(( seed % 10 ))"
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null
        seen=$(count_outcomes "$TMP/mcd.conf")
        echo "# kill $i: $seen outcomes on the topic"
done
start_daemon "$TMP/mcd.conf" "$TMP/daemon.final.log"
wait_until 240 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "after $KILLS kills, the daemon catches up"
sleep 3
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
tap_done

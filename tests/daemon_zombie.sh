#!/bin/sh
# daemon_zombie.sh -- fencing of a stalled instance.  Instance A stops itself
# (SIGSTOP, by fault injection) in the middle of a batch: once before its
# Redis commit, once after the commit but before publishing the outbox.
# Instance B takes the partitions over after A's session times out and
# finishes the stream.  Then A is continued: it must neither write its stale
# state to Redis nor publish its outbox.  The outcome topic must hold
# replay's outcomes exactly once, and Redis replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_ZOMBIE_EVENTS:-1500}
current_stream 23 "$EVENTS" 150 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"

run_case() {  # run_case WHERE: commit | publish
        where=$1
        start_services -p "$where: " 4 "batch.max_events = 30" "batch.wait = 10ms"
        publish_events "$TMP/in.jsonl"
        ok $? "$where: published $EVENTS events ($n_want outcomes expected)"

        if [ "$where" = commit ]; then
                MCD_FAULT_STOP_BEFORE_COMMIT=6 $MCD run -c "$TMP/mcd.conf" 2> "$TMP/a.log" &
        else
                MCD_FAULT_STOP_BEFORE_PUBLISH=6 $MCD run -c "$TMP/mcd.conf" 2> "$TMP/a.log" &
        fi
        A=$!
        PIDS="$PIDS $A"
        wait_until 60 stopped "$A"
        ok $? "$where: instance A stalled before its $where"

        start_daemon "$TMP/mcd.conf" "$TMP/b.log"
        B=$DAEMON_PID
        wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "$where: instance B took the partitions over and finished the stream"
        grep -q "is owned by another instance\|was claimed by another instance" "$TMP/a.log"
        ok $([ $? -ne 0 ]; echo $?) "$where: A has not noticed anything yet"

        kill -CONT "$A"
        wait_until 30 grep -q "is owned by another instance\|was claimed by another instance" "$TMP/a.log"
        ok $? "$where: A, continued, finds itself fenced"
        sleep 8      # A rejoins the group; both settle
        assert_exactly_once "$TMP/mcd.conf" "$where: "
        kill -TERM "$A" "$B"
        wait "$A"
        ok $? "$where: A exits 0 on SIGTERM"
        wait "$B"
        ok $? "$where: B exits 0 on SIGTERM"
        stop_services
}

for where in ${MCD_ZOMBIE_CASES:-commit publish}; do
        run_case "$where"
done
tap_done

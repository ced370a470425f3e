#!/bin/sh
# daemon_rollback.sh -- exactly once when Redis comes back older (issue 15):
# Redis is snapshotted mid-stream, the daemon goes on committing and
# publishing past the snapshot, then Redis is killed and restarted from the
# snapshot.  The snapshot is taken when every partition's outbox is empty
# (one more event, then its repeat, which emits nothing, made the commits
# that trimmed them): an owner that reconnects then has nothing to
# reconcile, and without the commit counter it would re-process and publish
# again what the lost commits published.  The test first shows the rollback happened (the
# snapshot's offsets are behind Redis's before the kill) and the outboxes
# were empty, then that the daemon found it (its commit counter was ahead of
# Redis's) and re-processed with a lookup of what it had already published:
# the outcome topic equals replay's outcomes, each once, and Redis replay's
# final states.
#   quiet: the daemon is idle when Redis rolls back (it finds the rollback
#          when it connects again);
#   kill:  the daemon is SIGKILLed as soon as it found the rollback, and a
#          new one starts: the re-processing record in Redis makes it look
#          up the outputs too;
#   gone:  the daemon is SIGKILLed before Redis rolls back, so nobody
#          remembers the commit counters: a new one finds the rollback by
#          the counters the consumer group's offsets carry.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_ROLLBACK_EVENTS:-2000}
empty_outboxes() {  # partitions whose outbox is empty
        for q in 0 1 2 3; do redis-cli -p "$REDIS_PORT" llen "mcd:outbox:$q"; done | grep -cx 0
}
rollback_case() {  # rollback_case NAME
        name=$1
        # The second half is published to both topics while the daemon runs:
        # merge_wait covers one topic's part arriving late on a loaded machine.
        start_services -p "$name: " 4 "batch.max_events = 50" "batch.wait = 10ms" "merge_wait = 5s"
        future_stream 11 "$EVENTS" 200 "$TMP/$name.stream"
        half=$(( $(wc -l < "$TMP/$name.stream") / 2 ))
        head -n "$half" "$TMP/$name.stream" > "$TMP/$name.first"
        tail -n +"$((half + 1))" "$TMP/$name.stream" > "$TMP/$name.second"
        # one event of a customer of its own, and its repeat, between the halves
        sed -n "${half}p" "$TMP/$name.stream" |
                sed 's/.*"occurred_at":"\([^"]*\)".*/{"event_id":"nudge","occurred_at":"\1","customer_id":"c-nudge","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"p-1"}/' \
                > "$TMP/$name.nudge"
        cat "$TMP/$name.first" "$TMP/$name.nudge" "$TMP/$name.nudge" "$TMP/$name.second" > "$TMP/$name.in"
        expect_replay "$TMP/$name.in"
        n_first=$($MCD replay "$TMP/$name.first" | wc -l)

        publish_events "$TMP/$name.first"
        start_daemon "$TMP/mcd.conf" "$TMP/$name.1.log"
        wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_first"
        sleep 2
        publish_events "$TMP/$name.nudge"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$((n_first + 1))"
        sleep 1
        publish_events "$TMP/$name.nudge"
        wait_until 60 sh -c "[ \$(for q in 0 1 2 3; do redis-cli -p $REDIS_PORT llen mcd:outbox:\$q; done | grep -cx 0) -eq 4 ]"
        n_empty=$(empty_outboxes)
        snapshot_redis
        ok $([ "$n_empty" -eq 4 ]; echo $?) "$name: snapshot taken with $n_empty of 4 outboxes empty"
        publish_events "$TMP/$name.second"
        wait_until 180 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "$name: the whole stream processed past the snapshot"
        sleep 2
        before=$(offsets_sum)
        at_snapshot=$(snapshot_sum)
        ok $([ "$at_snapshot" -lt "$before" ]; echo $?) \
                "$name: the snapshot is older: stored offsets summed $at_snapshot there, $before in Redis now"
        log="$TMP/$name.1.log"
        if [ "$name" = gone ]; then
                sleep 2         # the group's copy is sent at most once a second
                kill -KILL "$DAEMON_PID"
                wait "$DAEMON_PID" 2>/dev/null
        fi
        roll_back_redis
        if [ "$name" = gone ]; then
                ahead=$(group_ahead "$TMP/mcd.conf")
                ok $([ "$ahead" -gt 0 ]; echo $?) \
                        "$name: the owner is gone, and the group's copy is ahead of Redis on $ahead partition side(s)"
                diag < "$TMP/lag"
                log="$TMP/$name.2.log"
                start_daemon "$TMP/mcd.conf" "$log"
        fi
        wait_until 60 grep -q "Redis came back older" "$log"
        ok $? "$name: the daemon found the rollback"
        grep "came back older" "$log" | head -2 | diag
        if [ "$name" = kill ]; then
                wait_until 30 redo_pending
                kill -KILL "$DAEMON_PID"
                wait "$DAEMON_PID" 2>/dev/null
                redo_pending
                ok $? "$name: killed with its re-processing record in Redis"
                start_daemon "$TMP/mcd.conf" "$TMP/$name.2.log"
        fi
        wait_until 120 redo_done
        ok $? "$name: re-processing done (no record left)"
        sleep 2
        assert_exactly_once "$TMP/mcd.conf" "$name: "
        stop_daemon_ok "$name: "
        stop_services
}

for c in ${MCD_ROLLBACK_CASES:-quiet kill gone}; do
        rollback_case "$c"
done
tap_done

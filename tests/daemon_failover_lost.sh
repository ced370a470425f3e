#!/bin/sh
# daemon_failover_lost.sh -- a Sentinel failover to a replica that really
# missed writes (issue 15): one master, one replica, three redis-sentinel
# processes, the daemon finding the master through them.  The first half of
# the stream is processed with the replica in sync; then the replica is cut
# off from the master's replication stream (SIGSTOPped, and its link killed
# on the master with CLIENT KILL TYPE replica, so that neither the socket
# buffers nor a reconnect with a partial resync bring it the rest) while the
# daemon commits and publishes the second half to the master alone.  The
# master is then SIGKILLed, the replica resumed, and the Sentinels promote
# it: Redis came back older.  The test shows that the replica missed writes
# (its replication offset, and the daemon's stored offsets summed, behind
# what the master held just before it died), then that the daemon found the
# rollback and re-processed with a lookup of what it had already published:
# the outcome topic equals replay's outcomes, each once, and the new master
# holds replay's final states.
#   live:    the daemon runs on through the failover;
#   restart: the daemon is SIGKILLed right after the master, and a new one
#            starts: nobody remembers the commit counters, only the
#            consumer group's copy of them tells.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_FAILOVER_EVENTS:-2000}
link_down() {  # link_down PORT: the replica on PORT knows it lost its master
        redis-cli -p "$1" info replication | grep -q '^master_link_status:down'
}

redone() {  # redone OFFSETS: on the promoted replica, no re-processing record left, the offsets summed back to OFFSETS
        redo_done "$REPLICA_PORT" && [ "$(offsets_sum "$REPLICA_PORT")" -ge "$1" ]
}
failover_case() {  # failover_case NAME
        name=$1
        start_redis; ok $? "$name: master redis-server started on port $REDIS_PORT (AOF on)"
        start_replica "$REDIS_PORT"; ok $? "$name: replica started on port $REPLICA_PORT"
        start_sentinels "$REDIS_PORT"; ok $? "$name: three Sentinels on ports$SENTINEL_PORTS"
        wait_until 30 sentinels_name "$REDIS_PORT"
        ok $? "$name: every Sentinel names the master's port $REDIS_PORT"
        start_kafka 4; ok $? "$name: mock cluster started at $BOOTSTRAP"
        # redis.port names a port where nothing listens: only the Sentinels
        # lead to Redis.  The second half is published while the daemon runs.
        write_config "$TMP/$name.conf" "redis.sentinels = $SENTINELS" "redis.master_name = mymaster" \
                "redis.port = 1" "batch.max_events = 20" "batch.wait = 10ms" "merge_wait = 5s"
        future_stream 17 "$EVENTS" 200 "$TMP/$name.in"
        half=$(( $(wc -l < "$TMP/$name.in") / 2 ))
        head -n "$half" "$TMP/$name.in" > "$TMP/$name.first"
        tail -n +"$((half + 1))" "$TMP/$name.in" > "$TMP/$name.second"
        $MCD replay --state-out "$TMP/want_states" "$TMP/$name.in" | strip_messages > "$TMP/want"

        "$MCD_BIN" publish --in-order -c "$TMP/$name.conf" "$TMP/$name.first" 2> "$TMP/publish.err"
        start_daemon "$TMP/$name.conf" "$TMP/$name.1.log"
        # Processed: every event of the first half committed (the next
        # offsets summed over both topics' partitions are its length).
        wait_until 120 sh -c "[ \$(redis-cli -p $REDIS_PORT --scan --pattern 'mcd:off:*' | while read -r k; do
                redis-cli -p $REDIS_PORT hmget \$k rel sub; done | awk '\$1 > 0 { s += \$1 } END { print s + 0 }') -ge $half ]"
        ok $? "$name: the first half processed ($half events committed, $(count_outcomes "$TMP/$name.conf") outcomes)"
        wait_until 10 sh -c "[ \"\$(redis-cli -p $REPLICA_PORT info replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p')\" = \"\$(redis-cli -p $REDIS_PORT info replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p')\" ]"
        ok $? "$name: the replica is in sync with the master (offset $(repl_offset "$REPLICA_PORT"))"
        # The replica cut off: stopped, and its link closed on the master
        # (what the socket buffers held is all it will ever get).
        kill -STOP "$REPLICA_PID"
        redis-cli -p "$REDIS_PORT" client kill type replica > /dev/null
        cut_at=$(repl_offset "$REDIS_PORT")
        sum_at_cut=$(offsets_sum "$REDIS_PORT")
        ok $? "$name: replica stopped and its link killed at replication offset $cut_at (offsets summed $sum_at_cut)"
        "$MCD_BIN" publish --in-order -c "$TMP/$name.conf" "$TMP/$name.second" 2>> "$TMP/publish.err"
        wait_until 180 outcomes_at_least "$TMP/$name.conf" "$(wc -l < "$TMP/want")"
        ok $? "$name: the whole stream processed on the master alone"
        sleep 2         # the group's copy of the counters is sent at most once a second
        before=$(offsets_sum "$REDIS_PORT")
        master_at=$(repl_offset "$REDIS_PORT")
        ok $([ "$before" -gt "$sum_at_cut" ]; echo $?) \
                "$name: the master went on: offsets summed $sum_at_cut at the cut, $before now (replication offset $master_at)"

        kill -KILL "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
        if [ "$name" = restart ]; then
                kill -KILL "$DAEMON_PID"
                wait "$DAEMON_PID" 2>/dev/null
        fi
        kill -CONT "$REPLICA_PID"
        # Read the replica before it is promoted and the daemon writes to it.
        wait_until 10 link_down "$REPLICA_PORT"
        replica_at=$(repl_offset "$REPLICA_PORT")
        after=$(offsets_sum "$REPLICA_PORT")
        ok $([ -n "$replica_at" ] && [ "$replica_at" -lt "$master_at" ]; echo $?) \
                "$name: the replica missed writes: replication offset $replica_at, the master's $master_at"
        ok $([ "$after" -lt "$before" ]; echo $?) \
                "$name: its stored offsets are behind: summed $after there, $before on the dead master"
        wait_until 120 promoted "$REPLICA_PORT"
        ok $? "$name: the Sentinels promoted the replica (port $REPLICA_PORT)"
        promoted "$REPLICA_PORT" || sentinel_events
        log="$TMP/$name.1.log"
        if [ "$name" = restart ]; then
                ahead=$(group_ahead "$TMP/$name.conf")
                ok $([ "$ahead" -gt 0 ]; echo $?) \
                        "$name: the owner is gone, and the group's copy is ahead of Redis on $ahead partition side(s)"
                diag < "$TMP/lag"
                log="$TMP/$name.2.log"
                start_daemon "$TMP/$name.conf" "$log"
        fi
        wait_until 90 grep -q "Redis master mymaster is at 127.0.0.1:$REPLICA_PORT (Redis Sentinel " "$log"
        ok $? "$name: the daemon follows the master to 127.0.0.1:$REPLICA_PORT"
        wait_until 60 grep -q "Redis came back older" "$log"
        ok $? "$name: the daemon found the rollback"
        grep "came back older" "$log" | head -2 | diag
        wait_until 120 redone "$before"
        ok $? "$name: re-processing done (no record left, the offsets back to $before)"
        sleep 2
        assert_exactly_once "$TMP/$name.conf" "$name: "
        stop_daemon_ok "$name: "
        stop_sentinels
        kill_ours KILL "$REPLICA_PID"
        wait "$REPLICA_PID" 2>/dev/null
        kill_ours KILL "$KAFKA_PID"
        wait "$KAFKA_PID" 2>/dev/null
        rm -rf "$TMP/redis" "$TMP/replica" "$TMP"/sentinel.*
}

for c in ${MCD_FAILOVER_CASES:-live restart}; do
        failover_case "$c"
done
tap_done

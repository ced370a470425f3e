#!/bin/sh
# daemon_zombie.sh -- fencing of a stalled instance.  Instance A stops itself
# (SIGSTOP, by fault injection) in the middle of a batch: once before its
# Redis commit, once after the commit but before publishing the outbox, once
# after its outputs were delivered but before its changelog records were
# appended.
# Instance B takes the partitions over after A's session times out and
# finishes the stream.  Then A is continued: it must neither write its stale
# state to Redis nor publish its outbox, nor append its changelog records
# after B's newer ones: in that case Redis is then lost, and the instances
# must rebuild B's last offsets from the changelog, not A's older ones.
# Once A is back, events of customers of their own follow: every partition
# must go on.  Case reclaim is case publish with the consumer group's copy
# sent once an hour: A, continued, restarts its partitions (its frames
# are past the session timeout) before it learns that it lost them, and
# must not claim them over B.  Its claims wait for the group's answer,
# which takes the assignment away; were one to go through, Redis names
# B's generation and so does the group's copy, sent as soon as B's pair
# was ready (test_store.c and test_group_offsets.c show each).  Before
# all three, A's claim fenced B for good, and B's partitions stopped.
# Case claim: A stops before its very first claim, holding an assignment
# it is about to lose; continued, it must not claim either.  The outcome
# topic must hold replay's outcomes exactly once, and Redis replay's final
# states.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_ZOMBIE_EVENTS:-1500}
LATE=40         # customers of their own, one event each, published once A is back
current_stream 23 "$EVENTS" 150 "$TMP/stream.jsonl"
late_at=$(now_ms)
i=0
while [ "$i" -lt "$LATE" ]; do
        ev "late-$i" "$late_at" "late-c$i" RelationshipRequested "$EV_REL"
        i=$((i + 1))
done > "$TMP/late.jsonl"
cat "$TMP/stream.jsonl" "$TMP/late.jsonl" > "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"
n_late=$($MCD replay --now "$(utc_now)" "$TMP/late.jsonl" | wc -l)
n_stream=$((n_want - n_late))

rebuilt() {  # each partition's last rebuild: "PARTITION REL SUB"
        cat "$TMP/a.log" "$TMP/b.log" |
                sed -n 's/.*partition \([0-9]*\): restored [0-9]* customers and offsets \([0-9-]*\)\/\([0-9-]*\) from.*/\1 \2 \3/p' |
                awk '{ last[$1] = $0 } END { for (p in last) print last[p] }'
}
all_rebuilt() { [ "$(rebuilt | wc -l)" -eq 4 ]; }
settled() { redo_done && [ "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:off:*' | wc -l)" -eq 4 ]; }
# How A learns it lost its partitions (one of them; which comes first is a
# race between its worker and librdkafka's main thread).
fenced="is owned by another instance\|was claimed by another instance\|claims wait: the consumer group"
run_case() {  # run_case WHERE: commit | publish | changelog | reclaim | claim
        where=$1
        extra=
        at=6            # the batch (the claim round) A stops before
        case $where in
        commit) fault=MCD_FAULT_STOP_BEFORE_COMMIT ;;
        publish) fault=MCD_FAULT_STOP_BEFORE_PUBLISH ;;
        changelog) fault=MCD_FAULT_STOP_BEFORE_CHANGELOG ;;
        reclaim) fault=MCD_FAULT_STOP_BEFORE_PUBLISH extra="group_offsets.interval = 1h" ;;   # stops before its publish
        claim) fault=MCD_FAULT_STOP_BEFORE_CLAIM at=1 ;;
        esac
        start_services -p "$where: " 4 "batch.max_events = 30" "batch.wait = 10ms" ${extra:+"$extra"}
        publish_events "$TMP/stream.jsonl"
        ok $? "$where: published $EVENTS events ($n_stream outcomes expected)"
        env "$fault=$at" $MCD run -c "$TMP/mcd.conf" 2> "$TMP/a.log" &
        A=$!
        PIDS="$PIDS $A"
        wait_until 60 stopped "$A"
        ok $? "$where: instance A stalled ($fault)"

        start_daemon "$TMP/mcd.conf" "$TMP/b.log"
        B=$DAEMON_PID
        wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_stream"
        ok $? "$where: instance B took the partitions over and finished the stream"
        grep -q "$fenced" "$TMP/a.log"
        ok $([ $? -ne 0 ]; echo $?) "$where: A has not noticed anything yet"

        kill -CONT "$A"
        wait_until 30 grep -q "$fenced\|revoked (assignment lost)" "$TMP/a.log"
        ok $? "$where: A, continued, finds itself fenced, holds its claims back or loses its assignment"
        grep -h "$fenced\|revoked (assignment lost)" "$TMP/a.log" | head -2 | diag
        sleep 8      # A rejoins the group; both settle
        publish_events "$TMP/late.jsonl"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "$where: every partition goes on after A's return: the $LATE late events' $n_late outcomes are out"
        if [ "$where" = changelog ]; then
                grep -q "claimed again before its changelog records are appended" "$TMP/a.log"
                ok $? "$where: A dropped its stalled changelog records"
                before=$(offsets_sum)
                lose_redis
                start_redis "$REDIS_PORT"
                ok $? "$where: Redis lost, started again empty"
                wait_until 60 all_rebuilt
                ok $? "$where: the instances rebuilt the 4 partitions from the changelog"
                restored=$(rebuilt | awk '$2 > 0 { s += $2 } $3 > 0 { s += $3 } END { print s + 0 }')
                ok $([ "$restored" -eq "$before" ]; echo $?) \
                        "$where: the changelog's last word is B's: offsets summed $restored restored, $before before the loss"
                wait_until 60 settled
                ok $? "$where: rebuilt, re-processing done"
                sleep 2
        fi
        assert_exactly_once "$TMP/mcd.conf" "$where: "
        kill -TERM "$A" "$B"
        wait "$A"
        ok $? "$where: A exits 0 on SIGTERM"
        wait "$B"
        ok $? "$where: B exits 0 on SIGTERM"
        stop_services
}

for where in ${MCD_ZOMBIE_CASES:-commit publish changelog reclaim claim}; do
        run_case "$where"
done
tap_done

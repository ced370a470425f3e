#!/bin/sh
# daemon_stop_joining.sh -- SIGTERM while the daemon has joined its consumer
# group but not yet received its first assignment.  The mock cluster holds
# its SyncGroup answer back (mock-cluster --sync-group-delay) to keep that
# window open.  librdkafka 2.0's cooperative consumer closed there sends no
# LeaveGroup, so the daemon waits the join out (session.timeout.ms, 6 s, at
# most) before it closes:
#   answered: the answer comes 3 s late; the daemon takes its assignment,
#             leaves the group, and the next instance is its only member;
#   late:     the answer comes 8 s late; the daemon gives up waiting and
#             exits 0 without destroying its consumer (librdkafka before
#             2.3.0 aborts there: its issue 4312); the group drops the
#             member when its session times out.
. "$MCD_SRCDIR/tests/lib.sh"

start_redis; ok $? "redis-server started on port $REDIS_PORT"

# stop_case NAME DELAY-MS: the mock started with its SyncGroup answer
# DELAY-MS late; the first instance stopped while it waits for it.
stop_case() {
        start_kafka 2 --sync-group-delay "$2"; ok $? "$1: mock cluster at $BOOTSTRAP, its next SyncGroup answer $2 ms late"
        write_config "$TMP/mcd.conf" "log.level = debug" "kafka.debug = cgrp"
        start_daemon "$TMP/mcd.conf" "$TMP/$1.d1.log"; D1=$DAEMON_PID
        # librdkafka's join state once the JoinGroup answer is in: SyncGroup sent.
        wait_until 60 grep -q "wait-sync" "$TMP/$1.d1.log"
        ok $? "$1: the daemon joined the group and waits for its assignment"
        ! grep -q "partition [0-9]* assigned" "$TMP/$1.d1.log"
        ok $? "$1: no partition assigned yet"
        kill -TERM "$D1"
        wait "$D1"; st=$?
        ok $st "$1: it exits 0 on SIGTERM before its first assignment (exit $st)"
        grep -q "stopping during a rebalance: waiting for its end" "$TMP/$1.d1.log"
        ok $? "$1: it waited for the rebalance's end"
}

# The next instance, started after the first exited: it owns both
# partitions in the end and exits cleanly.  Its first JoinGroup answer
# names it the leader when it is the group's only member.
next_instance() {  # next_instance NAME
        start_daemon "$TMP/mcd.conf" "$TMP/$1.d2.log"; D2=$DAEMON_PID
        wait_until 60 daemon_ready "$TMP/$1.d2.log"
        ok $? "$1: a second instance owns partitions"
        wait_until 60 assigned 2 "$TMP/$1.d2.log"
        ok $? "$1: both of them"
        kill -TERM "$D2"
        wait "$D2"; st=$?
        ok $st "$1: the second instance exits 0 on SIGTERM (exit $st)"
        ! grep -q "not destroyed" "$TMP/$1.d2.log"
        ok $? "$1: its consumer, assigned, is destroyed as usual"
        kill_ours KILL "$KAFKA_PID"
        wait "$KAFKA_PID" 2>/dev/null
}

assigned() {  # assigned N LOG: LOG's instance was assigned N partitions
        [ "$(grep -c "partition [0-9]* assigned" "$2")" -eq "$1" ]
}

first_join_answer() {  # first_join_answer LOG: librdkafka's first JoinGroup response line
        grep -m1 "JoinGroup response:" "$1"
}

stop_case answered 3000
grep -q "the rebalance ended after" "$TMP/answered.d1.log"
ok $? "answered: the rebalance ended within the session timeout"
grep -q "partition [0-9]* assigned" "$TMP/answered.d1.log"
ok $? "answered: the assignment was taken, not processed"
grep -q "LEAVE: .*leave (in state up)" "$TMP/answered.d1.log"
ok $? "answered: it sent a LeaveGroup"
! grep -q "not destroyed" "$TMP/answered.d1.log"
ok $? "answered: its consumer, assigned, is destroyed as usual"
next_instance answered
first_join_answer "$TMP/answered.d2.log" | grep -q "(me), my MemberId .*member metadata count 1:"
ok $? "answered: the next instance's first join finds it alone in the group (the first left)"
first_join_answer "$TMP/answered.d2.log" | sed 's/^.*JOINGROUP: \[thrd:main\]: //' | diag

stop_case late 8000
grep -q "the rebalance did not end within" "$TMP/late.d1.log"
ok $? "late: it gave up waiting after the session timeout"
grep -q "closed before its first assignment; not destroyed" "$TMP/late.d1.log"
ok $? "late: its log says why its consumer was not destroyed"
next_instance late
tap_done

#!/bin/sh
# daemon_stop_joining.sh -- SIGTERM while the daemon has joined its consumer
# group but not yet received its first assignment.  librdkafka before 2.3.0
# aborts when such a consumer is destroyed (its issue 4312: the
# cooperative-sticky assignor has no state yet); the daemon must leave the
# group and exit 0 all the same.  The mock cluster holds its SyncGroup answer
# back (mock-cluster --sync-group-delay) to keep that window open.
. "$MCD_SRCDIR/tests/lib.sh"

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 2 --sync-group-delay 8000; ok $? "mock cluster at $BOOTSTRAP, its next SyncGroup answer 8 s late"
write_config "$TMP/mcd.conf" "log.level = debug" "kafka.debug = cgrp"

start_daemon "$TMP/mcd.conf" "$TMP/d1.log"; D1=$DAEMON_PID
# librdkafka's join state once the JoinGroup answer is in: SyncGroup sent.
wait_until 60 grep -q "wait-sync" "$TMP/d1.log"
ok $? "the daemon joined the group and waits for its assignment"
! grep -q "partition [0-9]* assigned" "$TMP/d1.log"
ok $? "no partition assigned yet"
kill -TERM "$D1"
wait "$D1"; st=$?
ok $st "it exits 0 on SIGTERM before its first assignment (exit $st)"
grep -q "left the group before its first assignment" "$TMP/d1.log"
ok $? "its log says why its consumer was not destroyed"

# The group is left, not abandoned: the next instance is given both
# partitions and exits cleanly once it has them.
start_daemon "$TMP/mcd.conf" "$TMP/d2.log"; D2=$DAEMON_PID
wait_until 60 daemon_ready "$TMP/d2.log"
ok $? "a second instance owns the partitions"
[ "$(grep -c "partition [0-9]* assigned" "$TMP/d2.log")" -eq 2 ]
ok $? "both of them"
kill -TERM "$D2"
wait "$D2"; st=$?
ok $st "the second instance exits 0 on SIGTERM (exit $st)"
! grep -q "not destroyed" "$TMP/d2.log"
ok $? "its consumer, assigned, is destroyed as usual"
tap_done

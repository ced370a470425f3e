#!/bin/sh
# daemon_group.sh -- three instances in one consumer group over one mock
# cluster and one Redis, while thousands of events flow: instances start,
# one leaves with SIGTERM, one is killed with SIGKILL and replaced.  The
# partitions move each time; the outcome topic must hold exactly replay's
# outcomes, each once, and Redis replay's final states.  No copy of the
# offsets to the group may cross a join (group_offsets.h).
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_GROUP_EVENTS:-4000}
# Events are published while the instances run: merge_wait must cover the
# lag between the two topics' fetches on a loaded machine.
start_services 6 "batch.max_events = 30" "batch.wait = 10ms" "merge_wait = 2s"

# Events of 2031, published in parts with idle gaps between them (see
# future_stream in lib.sh).
future_stream 31 "$EVENTS" 300 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
# The stream is published in three parts while the group changes.
split_thirds "$TMP/in.jsonl"

publish_events "$TMP/part1"
ok $? "first third published"
start_daemon "$TMP/mcd.conf" "$TMP/i1.log"; I1=$DAEMON_PID
start_daemon "$TMP/mcd.conf" "$TMP/i2.log"; I2=$DAEMON_PID
wait_until 60 outcomes_at_least "$TMP/mcd.conf" 200
ok $? "two instances are processing"
start_daemon "$TMP/mcd.conf" "$TMP/i3.log"; I3=$DAEMON_PID
publish_events "$TMP/part2"
ok $? "second third published while a third instance joins"
sleep 4
kill -TERM "$I1"
wait "$I1"; st=$?
ok $st "instance 1 leaves the group cleanly (SIGTERM, exit $st)"
kill -KILL "$I2"
wait "$I2" 2>/dev/null
start_daemon "$TMP/mcd.conf" "$TMP/i4.log"; I4=$DAEMON_PID
publish_events "$TMP/part3"
ok $? "last third published after instance 2 was killed and instance 4 started"

wait_until 240 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the group catches up"
sleep 3
assert_exactly_once "$TMP/mcd.conf" ""
for i in 3 4; do
        eval pid=\$I$i
        grep -c "assigned" "$TMP/i$i.log" | sed "s/^/instance $i: partitions assigned /" | diag
        kill -TERM "$pid"
        wait "$pid"
        ok $? "instance $i exits 0 on SIGTERM"
done
crossed=$(cat "$TMP"/i[1-4].log | grep -c "crossed the group's move to a new generation")
grep -H "crossed the group's move\|assignment lost\|SESSTMOUT" "$TMP"/i[1-4].log | diag
ok "$crossed" "no commit of the offsets to the group crossed a join ($crossed): librdkafka 2.0 takes that for a lost assignment"
tap_done

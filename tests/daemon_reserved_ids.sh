#!/bin/sh
# daemon_reserved_ids.sh -- customer ids that look like the changelog's own
# keys.  A customer record's key is its customer id, and each partition's
# offsets record's key is __offsets__:N: a customer named __offsets__:0
# shared that key, so the changelog's latest record under it was one or
# the other, and a rebuild read the customer as offsets or lost the
# customer (on a compacted topic, for good).  Such an id now goes under
# __c: in front.  Every customer id below is a valid one (the contract asks
# only UTF-8 of at most 128 bytes): the first half of their events is
# processed and the daemon SIGKILLed, its changelog records appended but
# still owed in Redis; a second daemon's claim appends them again, each
# as Redis holds its customer (found by the id under the escape), and
# stops; Redis is lost, and a third daemon rebuilds from the changelog and
# processes the second half.  The outcomes are replay's, each once, and
# Redis holds replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

start_services 2
T=1924992000000
IDS="__offsets__:0 __offsets__:1 __offsets__:00 __c:x __x _ c-1"
i=0
for id in $IDS; do
        ev "r$i" $((T + i)) "$id" RelationshipRequested "$EV_REL"
        i=$((i + 1))
done > "$TMP/part1"
i=0
for id in $IDS; do
        ev "a$i" $((T + 60000 + i)) "$id" RelationshipAccepted "$EV_REL"
        i=$((i + 1))
done > "$TMP/part2"
cat "$TMP/part1" "$TMP/part2" > "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
publish_events "$TMP/part1"
ok $? "published the first half: $(echo $IDS | wc -w) customers, each requested"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$(wc -l < "$TMP/part1")"
ok $? "the daemon processed it"
clog_keys() { kcat -C -b "$BOOTSTRAP" -t partnercenter.multichannel.changelog.v1 -e -q -f '%k\n' 2>> "$TMP/kcat.err"; }
key_count() { clog_keys | grep -cx "$1"; }
all_appended() { [ "$(clog_keys | grep -cv '^__offsets__:')" -ge 7 ] && [ "$(clog_keys | grep -c '^__offsets__:')" -ge 2 ]; }
wait_until 30 all_appended
ok $? "the changelog's keys: $(clog_keys | sort -u | tr '\n' ' ')"
[ "$(key_count "__c:__offsets__:0")" -eq 1 ] && [ "$(key_count "__offsets__:0")" -eq 1 ]
ok $? "the customer __offsets__:0 and partition 0's offsets record under keys of their own"
kill_ours KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2> /dev/null
owed=$(for q in 0 1; do redis-cli -p "$REDIS_PORT" lrange "mcd:clog_owed:$q" 0 -1; done | tr '\000\n' '  ')  # an element a batch, its keys NUL-separated
echo " $owed" | grep -q " __c:__offsets__:0 "
ok $? "SIGKILLed with its records owed: $owed"
start_daemon "$TMP/mcd.conf" "$TMP/daemon2.log"
wait_until 60 daemon_ready "$TMP/daemon2.log"
ok $? "a second daemon claims the partitions"
wait_until 30 test "$(key_count "__c:__offsets__:0")" -eq 2
ok $? "its repair appended the customer __offsets__:0 again, read from Redis by its id"
stop_daemon_ok
lose_redis
start_redis "$REDIS_PORT"
ok $? "Redis restarted empty"
start_daemon "$TMP/mcd.conf" "$TMP/daemon3.log"
wait_until 60 daemon_ready "$TMP/daemon3.log"
ok $? "a third daemon is ready"
grep -q "restored .* from the changelog" "$TMP/daemon3.log"
ok $? "it rebuilt Redis from the changelog: $(grep "restored .* from the changelog" "$TMP/daemon3.log" | sed 's/.*: restored/restored/' | tr '\n' ';')"
publish_events "$TMP/part2"
ok $? "published the second half: each accepted"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 1
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log" "$TMP/daemon2.log" "$TMP/daemon3.log"
tap_done

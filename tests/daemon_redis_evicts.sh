#!/bin/sh
# daemon_redis_evicts.sh -- a Redis that may evict keys is not used: with a
# maxmemory and an allkeys-* policy Redis drops any key once memory runs
# out, a customer's state among them, and nothing would tell (the meta key
# may stay).  The daemon says so and waits, as for an unreachable Redis,
# writing nothing; an operator's CONFIG SET to noeviction ends the wait,
# and the events are then processed exactly once.
. "$MCD_SRCDIR/tests/lib.sh"

start_services 2
redis-cli -p "$REDIS_PORT" config set maxmemory 1gb > /dev/null &&
        redis-cli -p "$REDIS_PORT" config set maxmemory-policy allkeys-lru > /dev/null
ok $? "Redis may evict: maxmemory 1gb, maxmemory-policy allkeys-lru"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 30 grep -q "may evict the daemon's keys (maxmemory set, maxmemory-policy allkeys-lru)" "$TMP/daemon.log"
ok $? "the daemon says Redis may evict its keys, and why"
ev r1 1924992000000 c-1 RelationshipRequested "$EV_REL" > "$TMP/in.jsonl"
ev r2 1924992060000 c-2 RelationshipRequested "$EV_REL" >> "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published 2 events"
wait_until 30 test 2 -le "$(grep -c "may evict the daemon's keys" "$TMP/daemon.log")"
ok $? "it tries again, and says so again"
keys=$(redis-cli -p "$REDIS_PORT" dbsize)
! daemon_ready "$TMP/daemon.log" && [ "$keys" = 0 ]
ok $? "nothing owned, nothing written meanwhile ($keys keys)"
redis-cli -p "$REDIS_PORT" config set maxmemory-policy noeviction > /dev/null
ok $? "maxmemory-policy set to noeviction"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"
wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log"
tap_done

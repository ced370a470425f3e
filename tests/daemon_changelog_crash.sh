#!/bin/sh
# daemon_changelog_crash.sh -- a crash between a batch's commit and its
# changelog append, then, much later, a Redis loss.  The batch's frames are
# delivered, its changelog records are not: the next owner must append them
# (as Redis holds the keys), or the changelog stays behind Redis for every
# customer the batch touched and no later event touched.  Later batches
# append newer offsets records, so a rebuild from such a changelog would
# restore those customers older than their offsets say: their events lost.
. "$MCD_SRCDIR/tests/lib.sh"

# One partition, batches of 20; 400 customers, about one event each, so
# that most customers of the crashed batch are not touched again.  No tick
# at the end (future_stream's): it would touch every customer.
start_services 1 "batch.max_events = 20" "batch.wait = 2s" "merge_wait = 20ms"
gen_events_built
gen_events -s 21 -n 400 -c 400 -T 1924992000000 | sort_by_time > "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
publish_events "$TMP/in.jsonl"
ok $? "published $(wc -l < "$TMP/in.jsonl") events of 400 customers ($n_want outcomes expected)"

# Daemon 1 delivers batch 3's outputs, is stopped before their changelog
# records are appended, and killed there.
MCD_FAULT_STOP_BEFORE_CHANGELOG=3 $MCD run -c "$TMP/mcd.conf" 2> "$TMP/d1.log" &
DAEMON_PID=$!
PIDS="$PIDS $DAEMON_PID"
wait_until 60 stopped "$DAEMON_PID"
ok $? "daemon 1 delivered batch 3 and stopped before its changelog append"
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
offs=$(redis-cli -p "$REDIS_PORT" hget mcd:off:0 rel)/$(redis-cli -p "$REDIS_PORT" hget mcd:off:0 sub)
published=$(count_outcomes "$TMP/mcd.conf")
[ "$published" -gt 0 ]
ok $? "daemon 1 killed with $published outcomes published, Redis at offsets $offs"

# Daemon 2, Redis intact, takes over and goes on to the end.
start_daemon "$TMP/mcd.conf" "$TMP/d2.log"
wait_until 120 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon 2 publishes the rest"
sleep 2
owed=$(sed -n 's/.*appended again \([0-9]*\) changelog record(s) (0 failed, \([0-9]*\) owed).*/\1 \2/p' "$TMP/d2.log")
[ -n "$owed" ] && [ "${owed%% *}" -gt 0 ]
ok $? "daemon 2 appended the crashed batches' records again (records, keys owed: ${owed:-none})"
assert_exactly_once "$TMP/mcd.conf" "daemon 2: "
# Each commit pushes its keys to the owed list; its owner trims what was
# delivered: after some 20 batches, at most the last few are left.
llen=$(redis-cli -p "$REDIS_PORT" llen mcd:clog_owed:0)
[ "$llen" -ge 1 ] && [ "$llen" -le 3 ]
ok $? "the owed list is trimmed as records are delivered ($llen element(s) left while running)"
stop_daemon_ok "daemon 2: "
# A clean stop hands the partition over trimmed: the next owner has no
# delivered frame to reconcile and nothing to append again.
llen=$(redis-cli -p "$REDIS_PORT" llen mcd:clog_owed:0)
olen=$(redis-cli -p "$REDIS_PORT" llen mcd:outbox:0)
[ "$llen" = 0 ] && [ "$olen" = 0 ] && grep -q "handing 1 partition(s) over: delivered frames and changelog records trimmed" "$TMP/d2.log"
ok $? "daemon 2 stopped with nothing owed and an empty outbox ($llen owed element(s), $olen frame(s) left)"

# Redis lost with its disk; daemon 3 rebuilds from the changelog alone.
lose_redis
start_redis "$REDIS_PORT"
ok $? "Redis restarted empty"
start_daemon "$TMP/mcd.conf" "$TMP/d3.log"
wait_until 60 grep -q "restored .* from the changelog" "$TMP/d3.log"
ok $? "daemon 3 rebuilt the partition from the changelog ($(grep -o 'restored [0-9]* customers' "$TMP/d3.log"))"
sleep 2
assert_exactly_once "$TMP/mcd.conf" "rebuilt: "
stop_daemon_ok "daemon 3: "
tap_done

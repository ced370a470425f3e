#!/bin/sh
# daemon_hot_customer.sh -- a customer's state is bounded (CONTRACT.md rule 2
# and "Bounds"), through the daemon: one customer's MCD_HOT_EVENTS (40,000)
# distinct events (each the cancellation of a subscription never reported)
# among ordinary customers give replay's outcomes, each once, and replay's
# final states in Redis, with no changelog append failing; the hot customer
# keeps limits.seen_ids ids, not one per event.  Then a repeat of its first
# event, whose id the count has forgotten, is rejected EVENT_TOO_OLD, as in
# replay.  (Its speed and the daemon's RSS are a benchmark phase,
# tests/bench/run.sh, not a timed test.)  The outcomes are read as they are
# published: the mock cluster keeps only a partition's newest 5 MiB, less
# than the hot customer's outcomes take.
. "$MCD_SRCDIR/tests/lib.sh"

HOT=${MCD_HOT_EVENTS:-40000}
SEEN=${MCD_HOT_SEEN_IDS:-10000}
T0=1924992000000                # 2031-01-01: no timer falls due by the wall clock
start_services 2 "limits.seen_ids = $SEEN"

gen_events -H "$HOT" -T "$T0" > "$TMP/hot.jsonl"
future_stream 3 600 40 "$TMP/others.jsonl"
sort_by_time < "$TMP/hot.jsonl" > "$TMP/hot.sorted"
cat "$TMP/hot.sorted" "$TMP/others.jsonl" | sort_by_time > "$TMP/in.jsonl"
head -1 "$TMP/hot.jsonl" > "$TMP/repeat.jsonl"
cat "$TMP/in.jsonl" "$TMP/repeat.jsonl" > "$TMP/all.jsonl"
expect_replay --max-seen-ids "$SEEN" "$TMP/all.jsonl"
$MCD replay --max-seen-ids "$SEEN" "$TMP/in.jsonl" | strip_messages > "$TMP/want.before"
n_in=$(wc -l < "$TMP/in.jsonl")
repeat_id=$(sed 's/.*"event_id":"\([^"]*\)".*/\1/' "$TMP/repeat.jsonl")
n_rejected=$(grep -c "\"caused_by\":\"$repeat_id\".*EVENT_TOO_OLD" "$TMP/want")
ok $([ "$n_rejected" -eq 1 ]; echo $?) "replay: the repeat of $repeat_id, forgotten by the count, is EVENT_TOO_OLD"

got_at_least() { [ "$(wc -l < "$TMP/got.raw")" -ge "$1" ]; }
publish_events "$TMP/in.jsonl"
ok $? "published $n_in events, $HOT of them for the hot customer"
"$MCD_BIN" tail -c "$TMP/mcd.conf" > "$TMP/got.raw" 2> "$TMP/tail.err" &
TAIL_PID=$!
PIDS="$PIDS $TAIL_PID"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 600 got_at_least "$(wc -l < "$TMP/want.before")"
ok $? "the daemon published the $(wc -l < "$TMP/want.before") outcomes of the stream"

"$MCD_BIN" state -c "$TMP/mcd.conf" --compact cust-hot > "$TMP/hot.state" 2>&1
n_seen=$(grep -o '\["[0-9a-f]\{16\}",' "$TMP/hot.state" | wc -l)
ok $([ "$n_seen" -eq "$SEEN" ]; echo $?) "the hot customer keeps $SEEN seen ids after $HOT events (has $n_seen)"
bytes=$(redis-cli -p "$REDIS_PORT" strlen "mcd:c:cust-hot")
echo "# the hot customer's state: $bytes bytes in Redis"

publish_events "$TMP/repeat.jsonl"
wait_until 60 got_at_least "$n_want"
ok $? "the repeat of $repeat_id gave an outcome"
sleep 2
kill "$TAIL_PID"
assert_outcomes "$TMP/got.raw" ""
grep -q "\"caused_by\":\"$repeat_id\".*EVENT_TOO_OLD" "$TMP/got"
ok $? "live: the repeat is rejected EVENT_TOO_OLD"
assert_states "$TMP/mcd.conf" ""
n_err=$(grep -c "cannot append to the changelog" "$TMP/daemon.log")
ok $([ "$n_err" -eq 0 ]; echo $?) "no changelog append failed ($n_err)"

stop_daemon_ok
tap_done

#!/bin/sh
# daemon_busy_timers.sh -- a timer fires once its pair's stream time passes
# it, even while the pair never goes quiet.  cust-alpha's switch is blocked
# until term_end T (all in the past: the wall clock is long past T); then
# other customers' events, each stamped after T, keep arriving on the same
# (only) partition pair less than merge_wait apart, so the pair is never
# idle (nothing new for merge_wait), and alpha has no event of its own.
# Replay fires alpha's timer as soon as the first of those events passes
# T; the daemon used to ask Redis for due customers only in idle pairs, so
# alpha's SwitchAllowed waited for the pair to go quiet, on a busy partition
# for ever.  The test proves the window (every gap between two publishes
# shorter than merge_wait, the feed still running when the timer's outcome
# is on the topic), then that the outcomes are replay's, each once.
. "$MCD_SRCDIR/tests/lib.sh"

MERGE_MS=5000
FEED_MAX=40             # events fed at most, about one a second

start_services 1 "merge_wait = ${MERGE_MS}ms"

s=$(now_ms)
T=$((s - 600000))       # term_end: ten minutes ago
{
        ev a1 $((T - 300000)) cust-alpha RelationshipRequested "$EV_REL"
        ev a2 $((T - 240000)) cust-alpha SubscriptionReported "\"subscription_id\":\"m365-a\",$EV_SUB,\"term_end\":\"$(iso "$T")\""
        ev a3 $((T - 180000)) cust-alpha RelationshipAccepted "$EV_REL"
        ev a4 $((T - 120000)) cust-alpha SwitchRequested '"subscription_id":"m365-a","target_partner_id":"partner-fabrikam"'
        ev b0 $((T - 60000)) cust-b0 RelationshipRequested "$EV_REL"
} > "$TMP/hist.jsonl"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"
publish_events "$TMP/hist.jsonl"
ok $? "published cust-alpha's history: a switch blocked until T = term_end, $(((s - T) / 1000)) s ago"

timer_out() {  # timer_out: alpha's timer outcome is on the topic
        "$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end 2>/dev/null | grep -q '"event_id":"timer:cust-alpha:m365-a:term_end#0"'
}

# The feed: cust-bK's RelationshipRequested at T + K s, one at a time,
# until alpha's timer outcome is seen (or FEED_MAX were fed).
cp "$TMP/hist.jsonl" "$TMP/in.jsonl"
k=0 seen=0 last=$(now_ms) max_gap=0
while [ "$k" -lt "$FEED_MAX" ]; do
        k=$((k + 1))
        ev "b$k" $((T + k * 1000)) "cust-b$k" RelationshipRequested "$EV_REL" > "$TMP/feed.jsonl"
        publish_events "$TMP/feed.jsonl" || break
        cat "$TMP/feed.jsonl" >> "$TMP/in.jsonl"
        t=$(now_ms)
        [ $((t - last)) -gt "$max_gap" ] && max_gap=$((t - last))
        last=$t
        if timer_out; then
                seen=1
                break
        fi
        sleep 0.3
done
[ "$seen" = 1 ]
ok $? "alpha's timer fired while the feed ran ($k events fed after T)"
[ "$max_gap" -lt "$MERGE_MS" ]
ok $? "the pair was never idle: the longest gap between two publishes was $max_gap ms, merge_wait $MERGE_MS ms"

expect_replay "$TMP/in.jsonl"
grep -q '"event_id":"timer:cust-alpha:m365-a:term_end#0".*"reason":"TERM_ENDED"' "$TMP/want"
ok $? "replay: alpha's SwitchAllowed TERM_ENDED, fired by the first event after T"
wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log" "$TMP/publish.err"
tap_done

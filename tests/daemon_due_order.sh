#!/bin/sh
# daemon_due_order.sh -- a timer due by the wall clock does not overtake an
# earlier event of its customer held in the merge (a3f84e9).  Twice, each
# time one customer's timer comes due at wall-clock time T while that
# customer's next event, occurred_at before T, waits out merge_wait (3 s)
# alone in its pair: published 2.5 s before T (it arrives 1-2.5 s before,
# ASan slows the publish) and is collected 1-2.5 s after
# T.  Once collected, the pair looks idle (both sides at their end, nothing
# buffered, nothing new for merge_wait); a due scan run after the collect
# fired the timer ahead of the event, unlike replay.  Phase 1: a switch
# blocked until term_end T, then SubscriptionCancelled(ENTIRE) -- replay's
# SwitchAllowed SUBSCRIPTION_CANCELLED, not TERM_ENDED.  Phase 2: a switch
# parked with its deadline at T (park_grace), then RelationshipAccepted --
# replay's SwitchBlockedUntilTermEnd, not NO_ACCEPTED_RELATIONSHIP.  The
# daemon's debug line of the batch that took the event proves the window
# (stamped and buffered ages: arrived before T, collected at T or after);
# its outcomes must be replay's for the same input, each once.  The due
# scan runs at most once a second: batch.wait = 1100ms makes every batch,
# the one that takes the held event included, run it.
. "$MCD_SRCDIR/tests/lib.sh"

MERGE_MS=3000
AHEAD_MS=2500           # the event arrives this long before T, collected MERGE_MS - AHEAD_MS after it
GRACE_S=12              # park_grace: phase 2's deadline, 12 s after the parked switch
LEAD_MS=12000           # phase 1's T: this long after its history is stamped

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 1; ok $? "mock cluster with 1 partition per topic at $BOOTSTRAP"
METRICS=127.0.0.1:$(free_port)
write_config "$TMP/mcd.conf" "metrics.listen = $METRICS" "merge_wait = ${MERGE_MS}ms" "batch.wait = 1100ms" \
        "park_grace = ${GRACE_S}s" "log.level = debug"

SWITCH='"target_partner_id":"partner-fabrikam"'

# window LABEL FILE T N_IN: the late event (FILE, one line; occurred_at
# T - AHEAD_MS, its Kafka timestamp too) published AHEAD_MS before T, once
# the daemon applied the N_IN - 1 inputs before it; then its batch's debug
# line shows that it arrived before T and was collected at T or after.
# Four TAP lines.
window() {
        _label=$1 _late=$2 _t=$3 _n=$4
        wait_until 30 inputs_applied "$METRICS" "$(($_n - 1))"
        ok $? "$_label: the daemon applied the $(($_n - 1)) events before it"
        _from=$(($(wc -l < "$TMP/daemon.log") + 1))
        sleep_until $((_t - AHEAD_MS))
        ok $? "$_label: that was before T - ${AHEAD_MS} ms ($(iso "$_t"))"
        publish_events "$_late"
        _done=$(now_ms)
        [ "$_done" -lt "$_t" ]
        ok $? "$_label: the late event, occurred_at before T, was in Kafka $((_t - _done)) ms before T"
        wait_until 30 inputs_applied "$METRICS" "$_n"
        _line=$(tail -n +"$_from" "$TMP/daemon.log" | grep -m1 "debug: batch [0-9]*: 1 events,")
        echo "$_line" | sed 's/.*\(batch [0-9]*: 1 events, [0-9]* due\).*\(oldest.*ago\);.*/\1 ... \2/' | diag
        _stamped=$(echo "$_line" | sed -n 's/.*oldest message stamped \(-\{0,1\}[0-9]*\) ms ago.*/\1/p')
        _held=$(echo "$_line" | sed -n 's/.*, buffered \([0-9]*\) ms ago.*/\1/p')
        _collected=$((_t - AHEAD_MS + ${_stamped:-0}))   # its occurred_at, its Kafka timestamp, + its age
        _arrived=$((_collected - ${_held:-0}))
        [ -n "$_stamped" ] && [ -n "$_held" ] && [ "$_arrived" -lt "$_t" ] && [ "$_collected" -ge "$_t" ]
        ok $? "$_label: the fault window: the event arrived $((_t - _arrived)) ms before T, was collected $((_collected - _t)) ms after it"
}

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"

# ---- phase 1: SWITCH_BLOCKED until T, SubscriptionCancelled before T -----------
s=$(now_ms)
T1=$((s + LEAD_MS))
{
        ev a1 $((s - 4000)) cust-alpha RelationshipRequested "$EV_REL"
        ev a2 $((s - 3000)) cust-alpha SubscriptionReported "\"subscription_id\":\"m365-a\",$EV_SUB,\"term_end\":\"$(iso "$T1")\""
        ev a3 $((s - 2000)) cust-alpha RelationshipAccepted "$EV_REL"
        ev a4 $((s - 1000)) cust-alpha SwitchRequested "\"subscription_id\":\"m365-a\",$SWITCH"
} > "$TMP/hist1.jsonl"
ev a5 $((T1 - AHEAD_MS)) cust-alpha SubscriptionCancelled '"subscription_id":"m365-a","scope":"ENTIRE_SUBSCRIPTION"' \
        > "$TMP/late1.jsonl"
publish_events "$TMP/hist1.jsonl"
ok $? "phase 1: published cust-alpha's history: a switch blocked until T = term_end"
window "phase 1" "$TMP/late1.jsonl" "$T1" 5

# ---- phase 2: a switch parked until T, RelationshipAccepted before T -----------
s=$(now_ms)
T2=$((s - 1000 + GRACE_S * 1000))      # the parked switch's deadline
{
        ev b1 $((s - 3000)) cust-bravo RelationshipRequested "$EV_REL"
        ev b2 $((s - 2000)) cust-bravo SubscriptionReported "\"subscription_id\":\"m365-b\",$EV_SUB,\"term_end\":\"2032-06-30T23:59:59.000Z\""
        ev b3 $((s - 1000)) cust-bravo SwitchRequested "\"subscription_id\":\"m365-b\",$SWITCH"
} > "$TMP/hist2.jsonl"
ev b4 $((T2 - AHEAD_MS)) cust-bravo RelationshipAccepted "$EV_REL" > "$TMP/late2.jsonl"
publish_events "$TMP/hist2.jsonl"
ok $? "phase 2: published cust-bravo's history: a switch parked, its deadline T = ${GRACE_S} s on"
window "phase 2" "$TMP/late2.jsonl" "$T2" 9

# ---- the outcomes: replay's ----------------------------------------------------
cat "$TMP/hist1.jsonl" "$TMP/late1.jsonl" "$TMP/hist2.jsonl" "$TMP/late2.jsonl" > "$TMP/in.jsonl"
expect_replay --park-grace "${GRACE_S}s" --now "$(iso "$(now_ms)")" "$TMP/in.jsonl"
grep -q '"caused_by":"a5".*"reason":"SUBSCRIPTION_CANCELLED"' "$TMP/want" &&
        grep -q '"caused_by":"b3".*"type":"SwitchBlockedUntilTermEnd"' "$TMP/want"
ok $? "replay: SwitchAllowed SUBSCRIPTION_CANCELLED for a5; b3 retried on acceptance, blocked until term end"
wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
grep "debug: batch [0-9]*: [0-9]* events, [1-9][0-9]* due" "$TMP/daemon.log" | sed 's/\(due customers\).*/\1/' | diag
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log" "$TMP/publish.err"
tap_done

#!/bin/sh
# daemon_whatif.sh -- `multichanneld whatif` on live customers: the daemon
# runs a history of three customers and is stopped; then whatif applies new
# events to one customer's state as Redis holds it.  Its outcomes must be
# exactly replay's for the history followed by the new events, less replay's
# for the history alone (byte for byte, messages included, in order), and the
# state it prints must be replay's final state of that customer.  Redis must
# be unchanged afterwards (every key's DUMP, digested) and no outcome
# published.  Also: a customer Redis does not hold starts empty; a parked
# event's deadline fires with --now; an input error names its line and a
# command-line error its argument.  Dates are in 2030 and terms end in 2032,
# so nothing falls due by the wall clock while the daemon runs.
. "$MCD_SRCDIR/tests/lib.sh"

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 2; ok $? "mock cluster started at $BOOTSTRAP"
write_config "$TMP/mcd.conf" "merge_wait = 5s"

cat > "$TMP/history.jsonl" <<'EOF'
{"event_id":"h-a1","occurred_at":"2030-03-01T08:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"partner-fabrikam"}
{"event_id":"h-b1","occurred_at":"2030-03-01T08:30:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"partner-fabrikam"}
{"event_id":"h-a2","occurred_at":"2030-03-01T09:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"m365-a","offer_name":"Microsoft 365 E3","billing":"LICENSE_BASED","channel":"EA","term_end":"2032-06-30T23:59:59.000Z"}
{"event_id":"h-c1","occurred_at":"2030-03-01T09:30:00.000Z","customer_id":"cust-charlie","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"azure-c","offer_name":"Azure plan","billing":"USAGE_BASED","channel":"EA"}
{"event_id":"h-a3","occurred_at":"2030-03-01T10:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"azure-a","offer_name":"Azure plan","billing":"USAGE_BASED","channel":"DIRECT"}
{"event_id":"h-a4","occurred_at":"2030-03-02T08:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}
{"event_id":"h-a5","occurred_at":"2030-03-02T09:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SwitchRequested","subscription_id":"m365-a","target_partner_id":"partner-fabrikam"}
EOF
# What support asks about cust-alpha: the blocked switch cancelled, the Azure
# subscription moved; a repeat of a history event (a duplicate) among them.
cat > "$TMP/new_alpha.jsonl" <<'EOF'
{"event_id":"n-a1","occurred_at":"2030-03-05T10:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SubscriptionCancelled","subscription_id":"m365-a","scope":"ENTIRE_SUBSCRIPTION"}
{"event_id":"h-a4","occurred_at":"2030-03-02T08:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}
{"event_id":"n-a2","occurred_at":"2030-03-05T11:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"CspSubscriptionCreated","subscription_id":"m365-a","csp_subscription_id":"csp-m365-a","partner_id":"partner-fabrikam"}
{"event_id":"n-a3","occurred_at":"2030-03-05T12:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"CspSubscriptionCreated","subscription_id":"azure-a","csp_subscription_id":"csp-azure-a","partner_id":"partner-fabrikam"}
{"event_id":"n-a4","occurred_at":"2030-03-05T13:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SubscriptionCancelled","subscription_id":"azure-a","scope":"ENTIRE_SUBSCRIPTION"}
EOF
# cust-bravo: a switch parked (no accepted relationship), its deadline
# reached by --now.
cat > "$TMP/new_bravo.jsonl" <<'EOF'
{"event_id":"n-b1","occurred_at":"2030-03-05T10:00:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"azure-b","offer_name":"Azure plan","billing":"USAGE_BASED","channel":"CSP","seller_partner_id":"partner-other"}
{"event_id":"n-b2","occurred_at":"2030-03-05T10:01:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"SwitchRequested","subscription_id":"azure-b","target_partner_id":"partner-fabrikam"}
EOF
BRAVO_NOW=2030-03-06T00:00:00.000Z

$MCD replay --state-out "$TMP/hist_states" "$TMP/history.jsonl" > "$TMP/hist.out"
ok $? "replay of the history ($(wc -l < "$TMP/hist.out") outcomes)"

# ---- the daemon runs the history, then stops -------------------------------
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/history.jsonl" 2> "$TMP/publish.err"
ok $? "published the history"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$(wc -l < "$TMP/hist.out")"
ok $? "daemon published the history's outcomes"
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
ok $? "daemon stopped (exit 0 on SIGTERM)"
compare_states "$TMP/mcd.conf" "$TMP/hist_states"
ok $? "Redis holds replay's states after the history"
n_published=$(count_outcomes "$TMP/mcd.conf")

# redis_digest: every key under the prefix and its DUMP, digested.
redis_digest() {
        redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:*' | sort | while IFS= read -r k; do
                printf '%s\n' "$k"
                redis-cli -p "$REDIS_PORT" --no-raw DUMP "$k"
        done | md5sum
}
digest_before=$(redis_digest)
n_keys=$(redis-cli -p "$REDIS_PORT" DBSIZE)

# whatif_case NAME CUSTOMER NEW_EVENTS [--now TIME]: whatif against replay.
whatif_case() {
        _name=$1 _cust=$2 _new=$3; shift 3
        $MCD whatif -c "$TMP/mcd.conf" --compact "$@" "$_cust" "$_new" > "$TMP/$_name.whatif" 2> "$TMP/$_name.err"
        ok $? "$_name: whatif exits 0"
        head -5 "$TMP/$_name.err" | diag
        cat "$TMP/history.jsonl" "$_new" > "$TMP/$_name.all.jsonl"
        $MCD replay "$@" --state-out "$TMP/$_name.all_states" "$TMP/$_name.all.jsonl" > "$TMP/$_name.all.out"
        ok $? "$_name: replay of history + new events"
        # Every outcome of the history comes first in replay's output (nothing
        # of the history falls due later), so what the new events add is the rest.
        _nh=$(wc -l < "$TMP/hist.out")
        head -n "$_nh" "$TMP/$_name.all.out" | cmp -s - "$TMP/hist.out"
        ok $? "$_name: replay's outcomes for history + new begin with the history's"
        tail -n +"$((_nh + 1))" "$TMP/$_name.all.out" > "$TMP/$_name.want"
        sed '$d' "$TMP/$_name.whatif" > "$TMP/$_name.got"
        diff "$TMP/$_name.want" "$TMP/$_name.got" | head -10 | cut -c1-250 | diag
        cmp -s "$TMP/$_name.want" "$TMP/$_name.got"
        ok $? "$_name: whatif's outcomes are replay's for history + new less the history's ($(wc -l < "$TMP/$_name.got"))"
        grep "\"customer_id\":\"$_cust\"" "$TMP/$_name.all_states" > "$TMP/$_name.want_state"
        tail -n 1 "$TMP/$_name.whatif" | cmp -s - "$TMP/$_name.want_state"
        ok $? "$_name: whatif's state is replay's final state of $_cust"
}

whatif_case alpha cust-alpha "$TMP/new_alpha.jsonl"
[ "$(wc -l < "$TMP/alpha.got")" -ge 4 ]
ok $? "alpha: the new events give outcomes ($(wc -l < "$TMP/alpha.got"))"
grep -q '"customer_state":"MIGRATED"' "$TMP/alpha.got"
ok $? "alpha: the customer would be MIGRATED"
whatif_case bravo cust-bravo "$TMP/new_bravo.jsonl" --now "$BRAVO_NOW"
grep -q '"reason":"NO_ACCEPTED_RELATIONSHIP"' "$TMP/bravo.got"
ok $? "bravo: the parked switch is rejected at its deadline, by --now"

# The indented state, as `state` prints it, and the same JSON as --compact.
$MCD whatif -c "$TMP/mcd.conf" cust-charlie /dev/null > "$TMP/charlie.pretty" 2> "$TMP/charlie.err"
ok $? "whatif with no events prints the state"
"$MCD_BIN" state -c "$TMP/mcd.conf" cust-charlie > "$TMP/charlie.state"
cmp -s "$TMP/charlie.pretty" "$TMP/charlie.state"
ok $? "whatif's state is printed as state prints it"

# A customer Redis does not hold starts from the empty state, from stdin.
sed 's/cust-bravo/cust-new/g' "$TMP/new_bravo.jsonl" |
        $MCD whatif -c "$TMP/mcd.conf" --compact cust-new > "$TMP/new.whatif" 2> "$TMP/new.err"
ok $? "whatif of a customer Redis does not hold exits 0"
grep -q "no state for customer 'cust-new'" "$TMP/new.err"
ok $? "whatif says that it starts from the empty state"
sed 's/cust-bravo/cust-new/g' "$TMP/new_bravo.jsonl" | $MCD replay --state-out "$TMP/new.states" > "$TMP/new.want"
sed '$d' "$TMP/new.whatif" | cmp -s - "$TMP/new.want"
ok $? "whatif of an unknown customer equals replay of its events alone"

# ---- errors -------------------------------------------------------------------
printf '%s\n' '{"event_id":"x"' \
        '{"event_id":"n-x","occurred_at":"2030-03-05T10:00:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}' \
        > "$TMP/bad.jsonl"
$MCD whatif -c "$TMP/mcd.conf" cust-alpha "$TMP/bad.jsonl" > /dev/null 2> "$TMP/bad.err"
[ $? -eq 1 ] && grep -q "^line 1: " "$TMP/bad.err" && grep -q "^line 2: .*cust-bravo" "$TMP/bad.err"
ok $? "input errors name their lines (bad JSON; another customer's event), exit 1"
cat "$TMP/bad.err" | diag
"$MCD_BIN" whatif -c "$TMP/mcd.conf" > /dev/null 2> "$TMP/usage.err"
[ $? -eq 2 ] && grep -q "CUSTOMER_ID" "$TMP/usage.err"
ok $? "no CUSTOMER_ID: exit 2, named"
"$MCD_BIN" whatif -c "$TMP/mcd.conf" --now yesterday cust-alpha < /dev/null > /dev/null 2> "$TMP/usage.err"
[ $? -eq 2 ] && grep -q -- "--now: invalid time 'yesterday'" "$TMP/usage.err"
ok $? "a bad --now: exit 2, named"
"$MCD_BIN" whatif -c "$TMP/mcd.conf" cust-alpha "$TMP/missing.jsonl" > /dev/null 2> "$TMP/usage.err"
[ $? -eq 2 ] && grep -q "FILE: cannot open" "$TMP/usage.err"
ok $? "a missing FILE: exit 2, named"

# ---- nothing written ----------------------------------------------------------
[ "$(redis_digest)" = "$digest_before" ] && [ "$(redis-cli -p "$REDIS_PORT" DBSIZE)" = "$n_keys" ]
ok $? "Redis unchanged by whatif ($n_keys keys, every DUMP the same)"
[ "$(count_outcomes "$TMP/mcd.conf")" -eq "$n_published" ]
ok $? "no outcome published by whatif ($n_published on the topic)"
no_sanitizer_report "$TMP"/*.err "$TMP/daemon.log"
tap_done

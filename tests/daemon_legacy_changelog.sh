#!/bin/sh
# daemon_legacy_changelog.sh -- a changelog written by the previous version
# is read and carried over: the changelog topic holds a customer record in
# the earlier JSON form ({"partition":N,"state":{"v":1,...}}, seen ids as
# strings) and Redis is empty, so the daemon rebuilds the partition from it.
# The customer's state is then in Redis, its seen ids still duplicates (a
# repeat of one changes nothing), and a new event applies on top of it; the
# state is written back in the binary form.  A customer whose id starts
# with "__" was keyed by its id then, and is keyed "__c:" and its id now:
# with a record under each key (the old key is never written again, so
# compaction keeps both), the rebuild takes the one under the new key.
. "$MCD_SRCDIR/tests/lib.sh"

start_services 1
STATE='{"v":1,"customer_id":"c-old","cloud":"COMMERCIAL","state":"ACCEPTED","partner_id":"p-1","indirect_reseller_id":null,"subscriptions":[{"subscription_id":"s-1","offer_name":"E3","billing":"USAGE_BASED","channel":"EA","seller_partner_id":null,"term_end":null,"state":"SUPPORTED","timer_outcomes":0}],"parked":[],"timers":[],"seen":["a-1","r-1","s-1"]}'
printf 'c-old|{"partition":0,"state":%s}\n' "$STATE" |
        kcat -P -b "$BOOTSTRAP" -t partnercenter.multichannel.changelog.v1 -K '|' 2> "$TMP/kcat.err"
ok $? "a customer record of the previous version on the changelog topic"
OLD_ID='{"v":1,"customer_id":"__old","cloud":"COMMERCIAL","state":"%s","partner_id":"p-1","indirect_reseller_id":null,"subscriptions":[],"parked":[],"timers":[],"seen":[]}'
{
        printf '__old|{"partition":0,"state":%s}\n' "$(printf "$OLD_ID" ACCEPTED)"
        printf '__c:__old|{"partition":0,"state":%s}\n' "$(printf "$OLD_ID" REQUESTED)"
} | kcat -P -b "$BOOTSTRAP" -t partnercenter.multichannel.changelog.v1 -K '|' 2>> "$TMP/kcat.err"
ok $? "customer __old: ACCEPTED under its old key, then REQUESTED under the escaped one"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "the daemon started on an empty Redis"
grep -q "restored 2 customers" "$TMP/daemon.log"
ok $? "it rebuilt the partition from the changelog (2 customers restored)"
"$MCD_BIN" state -c "$TMP/mcd.conf" --compact __old 2>&1 | grep -q '"state":"REQUESTED"'
ok $? "__old restored from its record under the escaped key, the later"
"$MCD_BIN" state -c "$TMP/mcd.conf" --compact c-old > "$TMP/state" 2>&1
grep -q '"state":"ACCEPTED".*"subscription_id":"s-1".*"state":"SUPPORTED"' "$TMP/state"
ok $? "the customer's state carried over"
cat "$TMP/state" | cut -c1-300 | diag

# a repeat of a seen id (nothing), then a new subscription (one outcome)
cat > "$TMP/in.jsonl" << 'EOF'
{"event_id":"a-1","occurred_at":"2031-01-02T00:00:00.000Z","customer_id":"c-old","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"p-1"}
{"event_id":"s-2","occurred_at":"2031-01-02T00:01:00.000Z","customer_id":"c-old","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"s-2","offer_name":"Azure","billing":"USAGE_BASED","channel":"DIRECT"}
EOF
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/in.jsonl" 2> "$TMP/publish.err"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" 1
ok $? "the new event gave its outcome"
sleep 2
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end > "$TMP/got" 2>/dev/null
[ "$(wc -l < "$TMP/got")" -eq 1 ] && grep -q '"caused_by":"s-2".*"type":"MultiChannelSupportEnabled"' "$TMP/got"
ok $? "only it: the repeat of a-1, seen before the upgrade, is still a duplicate"
[ "$(redis-cli -p "$REDIS_PORT" getrange mcd:c:c-old 0 2)" = MCS ]
ok $? "the state is written back in the binary form"
"$MCD_BIN" state -c "$TMP/mcd.conf" --compact c-old | grep -q '"seen":\[\["[0-9a-f]\{16\}","2031-01-02T00:01:00.000Z"\]'
ok $? "its old ids took the time of the first event after the upgrade"

stop_daemon_ok
tap_done

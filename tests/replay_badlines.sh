#!/bin/sh
# replay_badlines.sh -- every kind of bad line is reported on stderr as
# "line N: reason", skipped, and makes replay exit 1; the good lines around
# it are still applied.  Also the command-line errors, which name the argument.
. "$MCD_SRCDIR/tests/lib.sh"

C='"customer_id":"c-1","cloud":"COMMERCIAL"'
T='"occurred_at":"2026-01-05T10:00:00.000Z"'
cat > "$TMP/in.jsonl" <<JSON
{"event_id":"r-1",$T,$C,"type":"RelationshipRequested","partner_id":"p-1"}
{"event_id":"x-2",$T,$C,"type":"RelationshipRequested","partner_id":
{"event_id":"x-3",$T,$C,"type":"RelationshipExploded","partner_id":"p-1"}
{"event_id":"x-4",$T,$C,"type":"RelationshipAccepted"}
{"event_id":"x-5",$T,$C,"type":"RelationshipAccepted","partner_id":42}
{"event_id":"x-6",$T,$C,"type":"SubscriptionReported","subscription_id":"s-1","offer_name":"M365","billing":"LICENSE_BASED","channel":"EA"}
{"event_id":"x-7",$T,$C,"type":"SubscriptionReported","subscription_id":"s-2","offer_name":"Azure","billing":"USAGE_BASED","channel":"CSP"}
{"event_id":"x-8","occurred_at":"yesterday",$C,"type":"RelationshipAccepted","partner_id":"p-1"}
{"event_id":"x-9",$T,"customer_id":"c-1","cloud":"MARS","type":"RelationshipAccepted","partner_id":"p-1"}
[1,2,3]
{"event_id":"x-11",$T,$C,"type":"SubscriptionCancelled","subscription_id":"s-1","scope":"ENTIRE_SUBSCRIPTION","services":"all"}
{"event_id":"a-1",$T,$C,"type":"RelationshipAccepted","partner_id":"p-1"}
JSON
$MCD replay "$TMP/in.jsonl" > "$TMP/out" 2> "$TMP/err"
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "exit status 1 when a line is bad (got $rc)"
diag < "$TMP/err"

expect_err() {  # expect_err LINE PATTERN DESCRIPTION
        grep -q "^line $1: .*$2" "$TMP/err"
        ok $? "line $1 reported: $3"
}
expect_err 2 "invalid JSON" "invalid JSON"
expect_err 3 'unknown type "RelationshipExploded"' "unknown type"
expect_err 4 'missing field "partner_id"' "missing field"
expect_err 5 'field "partner_id" must be a string' "mistyped field"
expect_err 6 "term_end is required" "license-based subscription without term_end"
expect_err 7 "seller_partner_id is required" "CSP subscription without seller_partner_id"
expect_err 8 'field "occurred_at" must be an ISO-8601' "bad timestamp"
expect_err 9 'field "cloud" must be one of COMMERCIAL, US_GOVERNMENT' "unknown enum symbol"
expect_err 10 "not a JSON object" "not an object"
expect_err 11 'field "services" must be an array' "mistyped array"
n=$(wc -l < "$TMP/err")
ok $([ "$n" -eq 10 ]; echo $?) "exactly the 10 bad lines reported (got $n)"
grep -q '"caused_by":"r-1".*"to_state":"REQUESTED"' "$TMP/out"
ok $? "good line before the bad ones applied"
grep -q '"caused_by":"a-1".*"to_state":"ACCEPTED"' "$TMP/out"
ok $? "good line after the bad ones applied"

head -1 "$TMP/in.jsonl" | $MCD replay > /dev/null 2>&1
ok $? "exit status 0 when every line is applied"

# A line past 1 MiB is refused by its length, not read whole; the next is read.
{ printf '{"event_id":"'; head -c 1100000 /dev/zero | tr '\0' x; printf '"}\n'; head -1 "$TMP/in.jsonl"; } |
        $MCD replay > "$TMP/long.out" 2> "$TMP/long.err"
rc=$?
[ $rc -eq 1 ] && grep -qx "line 1: longer than 1048576 bytes; skipped" "$TMP/long.err" &&
        [ "$(wc -l < "$TMP/long.err")" -eq 1 ] && grep -q '"caused_by":"r-1"' "$TMP/long.out"
ok $? "a line past 1 MiB is skipped with its length named, the next applied (exit $rc)"

$MCD replay --now tomorrow "$TMP/in.jsonl" > /dev/null 2> "$TMP/cli"
rc=$?
grep -q -- "--now: invalid time 'tomorrow'" "$TMP/cli"
ok $([ $? -eq 0 ] && [ $rc -eq 2 ]; echo $?) "bad --now is named, exit 2"
$MCD replay --bogus > /dev/null 2> "$TMP/cli"
grep -q -- "unknown or incomplete option '--bogus'" "$TMP/cli"
ok $? "unknown option is named"
$MCD replay "$TMP/missing.jsonl" > /dev/null 2> "$TMP/cli"
grep -q "cannot open '$TMP/missing.jsonl'" "$TMP/cli"
ok $? "missing FILE is named"
$MCD frobnicate > /dev/null 2> "$TMP/cli"
rc=$?
grep -q "unknown command 'frobnicate'" "$TMP/cli"
ok $([ $? -eq 0 ] && [ $rc -eq 2 ]; echo $?) "unknown command is named, exit 2"
tap_done

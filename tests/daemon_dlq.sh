#!/bin/sh
# daemon_dlq.sh -- bad input through the real daemon (CONTRACT.md, "Bad
# input"): a redis-server on a free loopback port, a Kafka mock cluster in its
# own process, a stream of good events with bad messages of every kind
# produced between them (for the same customers, good events before and
# after).  Every bad message must be on the dead-letter topic exactly once,
# with its key and value length as received and the five headers (error code,
# error_message, source_topic, source_partition, source_offset); the good
# events' outcomes must be exactly replay's for the good events alone; the
# daemon must keep running and exit 0 on SIGTERM.
. "$MCD_SRCDIR/tests/lib.sh"

PRODUCE="$MCD_BUILDDIR/tests/produce_raw"
REL=partnercenter.relationships.v1
SUB=partnercenter.subscriptions.v1
TAB=$(printf '\t')

[ -x "$PRODUCE" ]; ok $? "produce_raw is built ($PRODUCE)"
# A parked event waits for its acceptance across the bad messages: a grace
# longer than that gap, in the daemon and in replay alike.
start_services 4 "park_grace = 7d"

# ---- good events: before the bad messages ----------------------------------
cat > "$TMP/good1.jsonl" <<'EOF'
{"event_id": "g-c1", "occurred_at": "2026-03-01T08:00:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
{"event_id": "g-a1", "occurred_at": "2026-03-01T09:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
{"event_id": "g-b1", "occurred_at": "2026-03-01T09:30:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "azure-b", "offer_name": "Azure plan", "billing": "USAGE_BASED", "channel": "EA"}
{"event_id": "g-a2", "occurred_at": "2026-03-01T10:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "sub-a", "offer_name": "Microsoft 365 E3", "billing": "LICENSE_BASED", "channel": "EA", "term_end": "2026-06-30T23:59:59.000Z"}
{"event_id": "g-b2", "occurred_at": "2026-03-01T11:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
{"event_id": "g-c2", "occurred_at": "2026-03-01T12:00:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "azure-c", "offer_name": "Azure plan", "billing": "USAGE_BASED", "channel": "CSP", "seller_partner_id": "partner-other"}
{"event_id": "g-d1", "occurred_at": "2026-03-01T13:00:00.000Z", "customer_id": "cust-delta", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam", "customer_is_csp_partner": true}
{"event_id": "g-e1", "occurred_at": "2026-03-01T13:30:00.000Z", "customer_id": "cust-echo", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
EOF
# ---- good events: after the bad messages -----------------------------------
cat > "$TMP/good2.jsonl" <<'EOF'
{"event_id": "g-c3", "occurred_at": "2026-03-02T07:00:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "g-c4", "occurred_at": "2026-03-02T07:30:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "azure-c", "target_partner_id": "partner-fabrikam"}
{"event_id": "g-a3", "occurred_at": "2026-03-02T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "g-c5", "occurred_at": "2026-03-02T08:30:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "CspSubscriptionCreated", "subscription_id": "azure-c", "csp_subscription_id": "azure-csp-c", "partner_id": "partner-fabrikam"}
{"event_id": "g-b3", "occurred_at": "2026-03-02T09:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "g-b4", "occurred_at": "2026-03-02T10:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "CspSubscriptionCreated", "subscription_id": "azure-b", "csp_subscription_id": "azure-csp-b", "partner_id": "partner-fabrikam"}
{"event_id": "g-d2", "occurred_at": "2026-03-02T11:00:00.000Z", "customer_id": "cust-delta", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "g-e2", "occurred_at": "2026-03-02T11:30:00.000Z", "customer_id": "cust-echo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "g-a4", "occurred_at": "2026-03-03T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "sub-a", "target_partner_id": "partner-fabrikam"}
EOF
cat "$TMP/good1.jsonl" "$TMP/good2.jsonl" > "$TMP/good.jsonl"
$MCD replay --now "$(utc_now)" --park-grace 7d "$TMP/good.jsonl" > "$TMP/want.raw"
ok $? "replay of the $(wc -l < "$TMP/good.jsonl") good events"
strip_messages < "$TMP/want.raw" > "$TMP/want"
n_want=$(wc -l < "$TMP/want")
[ "$n_want" -ge 10 ]; ok $? "replay gives $n_want outcomes for the good events"

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/good1.jsonl" 2> "$TMP/publish1.err"
ok $? "published the good events before the bad ones"

# ---- bad messages -----------------------------------------------------------
# bad CODE DESCRIPTION PRODUCE_RAW_ARGS... < input: produces the messages and
# records, for each, the dead letter it must become, as tail --dlq shows it
#   KEY<TAB>VALUE_BYTES<TAB>CODE<TAB>SOURCE_TOPIC<TAB>SOURCE_PARTITION<TAB>SOURCE_OFFSET
# and its bytes
#   SOURCE_TOPIC<TAB>SOURCE_PARTITION<TAB>SOURCE_OFFSET<TAB>KEY<TAB>HEXVALUE
: > "$TMP/dlq.want"
: > "$TMP/bytes.want"
n_bad=0
bad() {
        _code=$1 _what=$2; shift 2
        "$PRODUCE" -b "$BOOTSTRAP" "$@" > "$TMP/produced" 2>> "$TMP/produce.err"
        _st=$?
        [ "$_st" -eq 0 ] && [ -s "$TMP/produced" ]
        ok $? "produced $_what (must be $_code)"
        [ "$_st" -eq 0 ] || return
        awk -F '\t' -v OFS='\t' -v code="$_code" '{ print $4, $5, code, $1, $2, $3 }' \
                "$TMP/produced" >> "$TMP/dlq.want"
        cut -f1-4,6 "$TMP/produced" >> "$TMP/bytes.want"
        n_bad=$((n_bad + $(wc -l < "$TMP/produced")))
}
# Milliseconds of 2026-03-01T20:MM:00Z, between the two halves of the stream.
ts() { echo $((1772395200000 + $1 * 60000)); }

# Fingerprint of RelationshipEvent.v1, little-endian: 0xb9f89a1e268d40ad.
FP_REL=ad408d261e9af8b9

bad BAD_MAGIC "a text value" -t "$REL" <<EOF
cust-alpha${TAB}6e6f74206176726f2c206a7573742074657874${TAB}$(ts 0)
EOF
bad BAD_MAGIC "a valid subscription event with a wrong magic byte" -t "$SUB" -m badmagic <<'EOF'
{"event_id": "bad-2", "occurred_at": "2026-03-01T20:01:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "azure-b2", "offer_name": "Azure plan", "billing": "USAGE_BASED", "channel": "EA"}
EOF
bad BAD_MAGIC "a value shorter than the header" -t "$REL" <<EOF
cust-charlie${TAB}c301ad408d${TAB}$(ts 2)
EOF
bad BAD_MAGIC "an empty value" -t "$SUB" <<EOF
cust-delta${TAB}${TAB}$(ts 3)
EOF
bad UNKNOWN_SCHEMA "a relationship event with a fingerprint of no schema" -t "$REL" -m flipfp <<'EOF'
{"event_id": "bad-5", "occurred_at": "2026-03-01T20:04:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
bad CORRUPT_AVRO "a truncated subscription event" -t "$SUB" -m truncate <<'EOF'
{"event_id": "bad-6", "occurred_at": "2026-03-01T20:05:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "azure-c", "target_partner_id": "partner-fabrikam"}
EOF
bad CORRUPT_AVRO "a relationship event with trailing bytes" -t "$REL" -m trailing <<'EOF'
{"event_id": "bad-7", "occurred_at": "2026-03-01T20:06:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
bad CORRUPT_AVRO "a header with no Avro body, and a body starting with a negative string length" -t "$REL" <<EOF
cust-alpha${TAB}c301${FP_REL}${TAB}$(ts 7)
cust-bravo${TAB}c301${FP_REL}01${TAB}$(ts 7)
EOF
bad KEY_MISMATCH "a relationship event keyed with another customer" -t "$REL" -m valid -k cust-delta <<'EOF'
{"event_id": "bad-9", "occurred_at": "2026-03-01T20:08:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
bad KEY_MISMATCH "a subscription event with an empty key" -t "$SUB" -m valid -k "" <<'EOF'
{"event_id": "bad-10", "occurred_at": "2026-03-01T20:09:00.000Z", "customer_id": "cust-echo", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "azure-e", "offer_name": "Azure plan", "billing": "USAGE_BASED", "channel": "EA"}
EOF
bad WRONG_TOPIC "a relationship event on the subscriptions topic" -t "$SUB" -m valid <<'EOF'
{"event_id": "bad-11", "occurred_at": "2026-03-01T20:10:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
bad WRONG_TOPIC "a subscription event on the relationships topic" -t "$REL" -m valid <<'EOF'
{"event_id": "bad-12", "occurred_at": "2026-03-01T20:11:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "azure-c", "target_partner_id": "partner-fabrikam"}
EOF
bad INVALID_EVENT "a license-based SubscriptionReported without term_end" -t "$SUB" -m noterm <<'EOF'
{"event_id": "bad-13", "occurred_at": "2026-03-01T20:12:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "SubscriptionReported", "subscription_id": "sub-a2", "offer_name": "Office 365 E1", "billing": "LICENSE_BASED", "channel": "DIRECT", "term_end": "2026-12-31T23:59:59.000Z"}
EOF
sort "$TMP/dlq.want" > "$TMP/dlq.want.sorted"
[ "$(cut -f4-6 "$TMP/dlq.want" | sort -u | wc -l)" -eq "$n_bad" ]
ok $? "$n_bad bad messages produced, each at its own offset"

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/good2.jsonl" 2> "$TMP/publish2.err"
ok $? "published the good events after the bad ones"
cat "$TMP/produce.err" "$TMP/publish1.err" "$TMP/publish2.err" | head -40 | diag

# ---- the daemon -------------------------------------------------------------
count_dlq() { "$MCD_BIN" tail -c "$1" --dlq --exit-at-end 2>/dev/null | wc -l; }
dlq_at_least() { [ "$(count_dlq "$1")" -ge "$2" ]; }

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 dlq_at_least "$TMP/mcd.conf" "$n_bad"
ok $? "daemon published $n_bad dead letters"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2

# Dead letters: each bad message once, as received, with the five headers.
"$MCD_BIN" tail -c "$TMP/mcd.conf" --dlq --exit-at-end > "$TMP/dlq.raw" 2> "$TMP/tail.err"
ok $? "multichanneld tail --dlq reads the dead-letter topic"
# The line as tail prints it, every header a (non-empty) string; error_message
# may hold escaped quotes.
sed -n 's/^{"key":"\([^"]*\)","value_bytes":\([0-9]*\),"error":"\([A-Z_]*\)","error_message":"\([^"\\]\|\\.\)\{1,\}","source_topic":"\([^"]*\)","source_partition":"\([0-9]*\)","source_offset":"\([0-9]*\)"}$/\1\t\2\t\3\t\5\t\6\t\7/p' \
        "$TMP/dlq.raw" | sort > "$TMP/dlq.got"
grep -v '^{"key":"[^"]*","value_bytes":[0-9]*,"error":"[A-Z_]*","error_message":"\([^"\\]\|\\.\)\{1,\}","source_topic":"[^"]*","source_partition":"[0-9]*","source_offset":"[0-9]*"}$' \
        "$TMP/dlq.raw" | head -20 | diag
[ "$(wc -l < "$TMP/dlq.got")" -eq "$(wc -l < "$TMP/dlq.raw")" ]
ok $? "every dead letter carries error, error_message, source_topic, source_partition, source_offset"
while IFS= read -r line; do
        grep -qxF "$line" "$TMP/dlq.got"
        ok $? "$(echo "$line" | awk -F '\t' '{ printf "dead letter %s for %s/%s@%s (key \"%s\", %s bytes)", $3, $4, $5, $6, $1, $2 }')"
done < "$TMP/dlq.want"
diff "$TMP/dlq.want.sorted" "$TMP/dlq.got" | diag
cmp -s "$TMP/dlq.want.sorted" "$TMP/dlq.got"
ok $? "the dead-letter topic holds exactly the $n_bad bad messages, each once ($(wc -l < "$TMP/dlq.raw") dead letters)"
sed -n 's/.*"error_message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$TMP/dlq.raw" | sort | uniq -c | diag
# The values byte for byte, found by their source headers.
"$PRODUCE" -b "$BOOTSTRAP" -t partnercenter.multichannel.dlq.v1 -d -T > "$TMP/dlq.dump" 2> "$TMP/dump.err"
ok $? "produce_raw -d reads the dead-letter topic"
head -20 "$TMP/dump.err" | diag
awk -F '\t' -v OFS='\t' '{
        st = sp = so = "?"
        for (i = 6; i <= NF; i++) {
                if (index($i, "source_topic=") == 1) st = substr($i, 14)
                else if (index($i, "source_partition=") == 1) sp = substr($i, 18)
                else if (index($i, "source_offset=") == 1) so = substr($i, 15)
        }
        print st, sp, so, $4, $5
}' "$TMP/dlq.dump" | sort > "$TMP/bytes.got"
sort "$TMP/bytes.want" | diff - "$TMP/bytes.got" | diag
sort "$TMP/bytes.want" | cmp -s - "$TMP/bytes.got"
ok $? "each dead letter's key and value are the bad message's, byte for byte"
# Unchanged includes the timestamp: each letter's is its input's.
for t in "$REL" "$SUB"; do "$PRODUCE" -b "$BOOTSTRAP" -t "$t" -d -T; done > "$TMP/in.dump" 2>> "$TMP/dump.err"
n_ts=$(awk -F '\t' '
        function field(name,   i) {
                for (i = 6; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2)
                return "?"
        }
        NR == FNR { ts[$1 FS $2 FS $3] = field("@timestamp"); next }
        { src = field("source_topic") FS field("source_partition") FS field("source_offset") }
        (src in ts) && ts[src] == field("@timestamp") && ts[src] > 0 { n++ }
        END { print n + 0 }' "$TMP/in.dump" "$TMP/dlq.dump")
[ "$n_ts" -eq "$n_bad" ]
ok $? "each dead letter keeps its input's Kafka timestamp ($n_ts of $n_bad)"

# Outcomes: exactly replay's for the good events alone.
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end > "$TMP/got.raw" 2>> "$TMP/tail.err"
assert_outcomes "$TMP/got.raw" "good events: "
head -20 "$TMP/tail.err" | diag

# A key that is not UTF-8 (a Kafka key is bytes): tail --dlq shows it as
# hex, not left out of its line.
printf '\377\376k\t6e6f742061767265\t%s\n' "$(ts 20)" | "$PRODUCE" -b "$BOOTSTRAP" -t "$REL" > /dev/null 2>> "$TMP/produce.err"
ok $? "produced a text value under the key ff fe 6b"
wait_until 30 test "$(count_dlq "$TMP/mcd.conf")" -gt "$n_bad"
"$MCD_BIN" tail -c "$TMP/mcd.conf" --dlq --exit-at-end 2>> "$TMP/tail.err" | grep '"key_hex"' > "$TMP/hex.raw"
grep -q '^{"key":null,"key_hex":"fffe6b","value_bytes":8,"error":"BAD_MAGIC",' "$TMP/hex.raw"
ok $? "its dead letter's key is given as key_hex: $(cat "$TMP/hex.raw")"

kill -0 "$DAEMON_PID" 2>/dev/null
ok $? "daemon still running after the bad input"
kill -TERM "$DAEMON_PID"
wait_until 20 sh -c "! kill -0 $DAEMON_PID"
ok $? "daemon stops on SIGTERM"
wait "$DAEMON_PID"
ok $? "daemon exits 0 after SIGTERM"
n_logged=$(grep -c "dead letter" "$TMP/daemon.log")
[ "$n_logged" -ge "$n_bad" ]
ok $? "daemon logged the dead letters ($n_logged log lines for $n_bad)"
no_sanitizer_report "$TMP/daemon.log"
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka \|dead letter" | head -40 | diag
tap_done

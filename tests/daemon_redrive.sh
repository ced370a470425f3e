#!/bin/sh
# daemon_redrive.sh -- `multichanneld redrive` through the real daemon.
# Garbage (two text values: BAD_MAGIC; a license-based subscription without
# term_end: INVALID_EVENT; a fingerprint of no schema: UNKNOWN_SCHEMA) is
# dead-lettered among good events.  Three letters of our own stand for events
# whose schema was missing and has since been added: valid events written to
# the dead-letter topic as UNKNOWN_SCHEMA letters, their source records gone
# or, for the third, another message (the redrive falls back to the letter's
# own timestamp).
#   - redrive --dry-run counts every letter by code and sends nothing;
#     --since/--until select by a letter's record timestamp;
#   - redrive --error BAD_MAGIC sends the two back, to their partition, value
#     byte for byte, each naming its letter (multichanneld.redrive.from), and
#     they are dead-lettered again: two more letters;
#   - redrive --error UNKNOWN_SCHEMA brings the "fixed" events in: their
#     outcomes appear, once; the real unknown schema is dead-lettered again;
#   - a second redrive of everything skips the re-dead-lettered copies (it
#     sends as many as the first time, not twice as many) and changes no
#     outcome: the events already applied are duplicates (rule 1).
# To extend (e.g. a schema added through schemas.dir and SIGHUP): produce
# more letters before the daemon starts, and redrive/expect as below.
. "$MCD_SRCDIR/tests/lib.sh"

PRODUCE="$MCD_BUILDDIR/tests/produce_raw"
REL=partnercenter.relationships.v1
SUB=partnercenter.subscriptions.v1
DLQ=partnercenter.multichannel.dlq.v1
TAB=$(printf '\t')

[ -x "$PRODUCE" ]; ok $? "produce_raw is built ($PRODUCE)"
start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 2; ok $? "mock cluster started at $BOOTSTRAP"
write_config "$TMP/mcd.conf" "merge_wait = 5s"

# ---- input ------------------------------------------------------------------
cat > "$TMP/good.jsonl" <<'EOF'
{"event_id":"g-a1","occurred_at":"2030-03-01T08:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"partner-fabrikam"}
{"event_id":"g-b1","occurred_at":"2030-03-01T08:30:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"partner-fabrikam"}
{"event_id":"g-a2","occurred_at":"2030-03-01T09:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}
EOF
# The events of the letters of our own (schema "added" since).
cat > "$TMP/fixed.jsonl" <<'EOF'
{"event_id":"f-1","occurred_at":"2030-03-02T08:00:00.000Z","customer_id":"cust-fixed","cloud":"COMMERCIAL","type":"RelationshipRequested","partner_id":"partner-fabrikam"}
{"event_id":"f-2","occurred_at":"2030-03-02T09:00:00.000Z","customer_id":"cust-fixed","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}
{"event_id":"f-3","occurred_at":"2030-03-02T10:00:00.000Z","customer_id":"cust-fixed","cloud":"COMMERCIAL","type":"RelationshipRemoved","partner_id":"partner-fabrikam"}
EOF
$MCD replay "$TMP/good.jsonl" | strip_messages > "$TMP/want_good"
$MCD replay "$TMP/fixed.jsonl" | strip_messages > "$TMP/want_fixed"
n_good=$(wc -l < "$TMP/want_good")
n_fixed=$(wc -l < "$TMP/want_fixed")

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/good.jsonl" 2> "$TMP/publish.err"
ok $? "published the good events ($n_good outcomes expected)"
# garbage CODE PRODUCE_RAW_ARGS... < input: produced, recorded in
# $TMP/garbage.CODE as produce_raw prints it (TOPIC PARTITION OFFSET KEY LEN HEX).
garbage() {
        _code=$1; shift
        "$PRODUCE" -b "$BOOTSTRAP" "$@" >> "$TMP/garbage.$_code" 2>> "$TMP/produce.err"
        ok $? "produced garbage that must be $_code"
}
garbage BAD_MAGIC -t "$REL" <<EOF
cust-alpha${TAB}6e6f74206176726f${TAB}1898582400000
cust-bravo${TAB}7374696c6c206e6f74${TAB}1898582460000
EOF
garbage INVALID_EVENT -t "$SUB" -m noterm <<'EOF'
{"event_id":"x-1","occurred_at":"2030-03-01T10:00:00.000Z","customer_id":"cust-alpha","cloud":"COMMERCIAL","type":"SubscriptionReported","subscription_id":"m365-a","offer_name":"Microsoft 365 E3","billing":"LICENSE_BASED","channel":"DIRECT","term_end":"2031-12-31T23:59:59.000Z"}
EOF
garbage UNKNOWN_SCHEMA -t "$REL" -m flipfp <<'EOF'
{"event_id":"x-2","occurred_at":"2030-03-01T11:00:00.000Z","customer_id":"cust-bravo","cloud":"COMMERCIAL","type":"RelationshipAccepted","partner_id":"partner-fabrikam"}
EOF
# Source offsets of our letters: two gone, one holding another message.
other=$("$PRODUCE" -b "$BOOTSTRAP" -t "$REL" -d | awk -F '\t' '$2 == 0 { print $3; exit }')
[ -n "$other" ]; ok $? "partition 0 of $REL holds a message (offset $other) for a letter that is not its"
set -- 1000000 1000001 "${other:-1000002}"
n_i=0
while IFS= read -r line; do
        printf '%s\n' "$line" | "$PRODUCE" -b "$BOOTSTRAP" -t "$DLQ" -p 0 -m valid -H error=UNKNOWN_SCHEMA \
                -H "error_message=unknown writer schema (test)" -H "source_topic=$REL" -H source_partition=0 \
                -H "source_offset=$1" >> "$TMP/own_letters" 2>> "$TMP/produce.err"
        ok $? "wrote a letter of our own: UNKNOWN_SCHEMA, source offset $1 ($(echo "$line" | cut -c1-22))"
        n_i=$((n_i + 1))
        shift
done < "$TMP/fixed.jsonl"
head -20 "$TMP/produce.err" | diag

# ---- helpers ------------------------------------------------------------------
count_dlq() { "$MCD_BIN" tail -c "$TMP/mcd.conf" --dlq --exit-at-end 2>/dev/null | wc -l; }
dlq_is() { [ "$(count_dlq)" -eq "$1" ]; }
count_topic() { "$PRODUCE" -b "$BOOTSTRAP" -t "$1" -d 2>/dev/null | wc -l; }
# redrive NAME ARGS...: runs it, its summary in $TMP/NAME.out; TAP line for exit 0.
redrive() {
        _name=$1; shift
        $MCD redrive -c "$TMP/mcd.conf" "$@" > "$TMP/$_name.out" 2> "$TMP/$_name.err"
        ok $? "redrive $* exits 0"
        diag < "$TMP/$_name.out"
        head -10 "$TMP/$_name.err" | diag
}
# row NAME CODE: the summary's row of CODE: "LETTERS SELECTED SENT".
row() { awk -v c="$2" '$1 == c { print $2, $3, $4 }' "$TMP/$1.out"; }

# ---- the daemon dead-letters the garbage ---------------------------------------
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
n_dlq=$((4 + n_i))
wait_until 60 dlq_is "$n_dlq"
ok $? "the dead-letter topic holds the 4 letters of garbage and our $n_i ($(count_dlq) of $n_dlq)"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_good"
ok $? "the good events' outcomes are out"
n_rel=$(count_topic "$REL")
n_sub=$(count_topic "$SUB")

# ---- dry runs ---------------------------------------------------------------------
redrive dry --dry-run
[ "$(row dry BAD_MAGIC)" = "2 2 2" ] && [ "$(row dry INVALID_EVENT)" = "1 1 1" ] &&
        [ "$(row dry UNKNOWN_SCHEMA)" = "4 4 4" ] && [ "$(row dry total)" = "7 7 7" ]
ok $? "dry run: every letter counted by code, all would be sent"
grep -q "^dry run: would send 7 of 7 selected; nothing sent$" "$TMP/dry.out"
ok $? "dry run says what it would send"
grep -q "^3 letter(s) would go with the dead letter's own timestamp" "$TMP/dry.out" &&
        grep -q "the record at $REL \[0\] offset $other is another message" "$TMP/dry.err"
ok $? "dry run: our three letters, their source records gone or another message, are told apart"
redrive dry_bad --dry-run --error BAD_MAGIC
[ "$(row dry_bad BAD_MAGIC)" = "2 2 2" ] && [ "$(row dry_bad total)" = "7 2 2" ]
ok $? "dry run --error BAD_MAGIC selects the 2 BAD_MAGIC letters"
redrive dry_time --dry-run --since 2040-01-01T00:00:00.000Z
redrive dry_time2 --dry-run --until 2020-01-01T00:00:00.000Z
[ "$(row dry_time total)" = "7 0 0" ] && [ "$(row dry_time2 total)" = "7 0 0" ]
ok $? "--since and --until select by the letter's timestamp"
sleep 2
[ "$(count_dlq)" -eq "$n_dlq" ] && [ "$(count_topic "$REL")" -eq "$n_rel" ] && [ "$(count_topic "$SUB")" -eq "$n_sub" ]
ok $? "dry runs sent nothing (input topics and dead-letter topic unchanged)"

# ---- garbage back, dead-lettered again ----------------------------------------------
redrive bad --error BAD_MAGIC
grep -q "^sent 2 of 2 selected, 0 failed$" "$TMP/bad.out"
ok $? "redrive --error BAD_MAGIC sent 2"
n_dlq=$((n_dlq + 2))
wait_until 60 dlq_is "$n_dlq"
ok $? "both dead-lettered again ($(count_dlq) letters of $n_dlq)"
"$PRODUCE" -b "$BOOTSTRAP" -t "$DLQ" -d > "$TMP/dlq.dump"
"$PRODUCE" -b "$BOOTSTRAP" -t "$REL" -d -T > "$TMP/rel.dump"
# The letters of the garbage, as DLQ/PARTITION/OFFSET, and the redriven
# records "PARTITION KEY HEX FROM".
awk -F '\t' 'NR == FNR { src[$2 "/" $3] = 1; next }
        { for (i = 6; i <= NF; i++) { if (index($i, "source_partition=") == 1) p = substr($i, 18)
                                      if (index($i, "source_offset=") == 1) o = substr($i, 15) }
          if (/\terror=BAD_MAGIC(\t|$)/ && (p "/" o) in src) print $1 "/" $2 "/" $3 }' \
        "$TMP/garbage.BAD_MAGIC" "$TMP/dlq.dump" | sort > "$TMP/bad_letters"
awk -F '\t' '{ for (i = 6; i <= NF; i++) if (index($i, "multichanneld.redrive.from=") == 1)
        print $2, $4, $5, substr($i, 28), substr($NF, 12) }' "$TMP/rel.dump" | sort > "$TMP/redriven"
awk -F '\t' '{ print $2, $4, $6 }' "$TMP/garbage.BAD_MAGIC" | sort > "$TMP/bad_sources"
cut -d' ' -f1-3 "$TMP/redriven" | cmp -s - "$TMP/bad_sources"
ok $? "each went back to its partition with its key and value byte for byte"
cut -d' ' -f4 "$TMP/redriven" | sort | cmp -s - "$TMP/bad_letters"
ok $? "each names the letter it came from ($(cut -d' ' -f4 "$TMP/redriven" | tr '\n' ' '))"
printf 'cust-alpha 1898582400000\ncust-bravo 1898582460000\n' > "$TMP/bad_times"
cut -d' ' -f2,5 "$TMP/redriven" | sort | cmp -s - "$TMP/bad_times"
ok $? "each went back with its original timestamp (read from its source record)"

# ---- the "fixed" events come in, once ---------------------------------------------
redrive unknown --error UNKNOWN_SCHEMA
grep -q "^sent 4 of 4 selected, 0 failed$" "$TMP/unknown.out"
ok $? "redrive --error UNKNOWN_SCHEMA sent 4"
n_dlq=$((n_dlq + 1))
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$((n_good + n_fixed))"
ok $? "the fixed events' outcomes are out"
wait_until 60 dlq_is "$n_dlq"
ok $? "the real unknown schema is dead-lettered again ($(count_dlq) letters of $n_dlq)"
cat "$TMP/want_good" "$TMP/want_fixed" | sort > "$TMP/want"
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end | strip_messages > "$TMP/got"
diff "$TMP/want" "$TMP/got" | head -6 | cut -c1-250 | diag
cmp -s "$TMP/want" "$TMP/got"
ok $? "the outcomes are the good events' and the fixed events', each once ($(wc -l < "$TMP/got"))"

# ---- again: nothing changes, the copies are skipped -----------------------------------
redrive again
grep -q "^sent 7 of 10 selected, 0 failed$" "$TMP/again.out" &&
        grep -q "^skipped 3 re-dead-lettered copies of letters selected in this run$" "$TMP/again.out"
ok $? "a second redrive of everything sends the 7 letters again, not their 3 copies"
n_dlq=$((n_dlq + 4))
wait_until 60 dlq_is "$n_dlq"
ok $? "the 4 letters of garbage are dead-lettered again ($(count_dlq) letters of $n_dlq)"
sleep 6   # merge_wait and a batch: time for any outcome to come out
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end | strip_messages > "$TMP/got2"
cmp -s "$TMP/want" "$TMP/got2"
ok $? "no outcome changed: the events already applied were duplicates (rule 1)"

# ---- a letter whose source is not a record ------------------------------------------------
# Parsed loosely, source_partition "0x1" was partition 0: the letter went to
# another partition than its customer's.
head -n 1 "$TMP/fixed.jsonl" | "$PRODUCE" -b "$BOOTSTRAP" -t "$DLQ" -p 0 -m valid -H error=INVALID_EVENT \
        -H "error_message=test" -H "source_topic=$REL" -H source_partition=0x1 -H source_offset=0 \
        > /dev/null 2>> "$TMP/produce.err"
ok $? "wrote a letter whose source_partition is 0x1"
redrive bogus --dry-run --error INVALID_EVENT
grep -q "source_partition '0x1' or source_offset '0' is not one; skipped" "$TMP/bogus.err" &&
        grep -q "^skipped 1 letter(s) naming no input record" "$TMP/bogus.out"
ok $? "it is skipped, named, and counted"

# ---- command-line errors -----------------------------------------------------------------
"$MCD_BIN" redrive -c "$TMP/mcd.conf" --error NOPE > /dev/null 2> "$TMP/usage.err"
[ $? -eq 2 ] && grep -q -- "--error: unknown code 'NOPE'" "$TMP/usage.err"
ok $? "an unknown --error code: exit 2, named"
"$MCD_BIN" redrive -c "$TMP/mcd.conf" --since 2030-01-02T00:00:00.000Z --until 2030-01-01T00:00:00.000Z \
        > /dev/null 2> "$TMP/usage.err"
[ $? -eq 2 ] && grep -q -- "--until: " "$TMP/usage.err"
ok $? "--until before --since: exit 2, named"

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
ok $? "daemon exits 0 after SIGTERM"
no_sanitizer_report "$TMP"/*.err "$TMP/daemon.log"
tap_done

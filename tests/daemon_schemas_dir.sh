#!/bin/sh
# daemon_schemas_dir.sh -- a producer's newer writer schema read without a
# rebuild (schemas.dir, issue 14): a RelationshipEvent.v2 writer that adds an
# optional field with a default.  Before its file is in the daemon's schema
# folder its events are dead letters UNKNOWN_SCHEMA; after the file is dropped
# there and SIGHUP, new events written with it are read, and the outcomes
# equal replay's for every event the daemon read.  A bad file is a
# configuration error at start (check-config and run name it) and, on SIGHUP,
# is logged and leaves the schemas in use.  Then `redrive --error
# UNKNOWN_SCHEMA` brings the dead-lettered part in: its outcomes appear, once,
# and a second redrive changes nothing.
. "$MCD_SRCDIR/tests/lib.sh"

start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 4; ok $? "mock cluster started at $BOOTSTRAP"
mkdir -p "$TMP/schemas" "$TMP/bad"
write_config "$TMP/mcd.conf" "park_grace = 7d" "merge_wait = 5s" "schemas.dir = $TMP/schemas"

# The v2 writer: v1 with an optional envelope field (default null) first.
sed 's/^  "fields": \[$/  "fields": [\n    {"name": "source_system", "type": ["null", "string"], "default": null},/' \
        "$MCD_SRCDIR/schemas/RelationshipEvent.v1.avsc" > "$TMP/RelationshipEvent.v2.avsc"
grep -q source_system "$TMP/RelationshipEvent.v2.avsc"; ok $? "a v2 writer schema made from v1"

# ---- check-config and a bad folder -------------------------------------------
"$MCD_BIN" check-config -c "$TMP/mcd.conf" > "$TMP/cc.out" 2>&1
ok $? "check-config accepts an empty schema folder"
cp "$TMP/RelationshipEvent.v2.avsc" "$TMP/bad/"
echo '{"type": "record", "name": "SubscriptionEvent", "fields": [' > "$TMP/bad/SubscriptionEvent.v3.avsc"
write_config "$TMP/bad.conf" "schemas.dir = $TMP/bad"
"$MCD_BIN" check-config -c "$TMP/bad.conf" > "$TMP/cc.out" 2>&1
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "check-config exits 1 on a bad schema file (got $rc)"
grep -q "SubscriptionEvent.v3.avsc" "$TMP/cc.out"; ok $? "check-config names the bad file"
diag < "$TMP/cc.out"
"$MCD_BIN" run -c "$TMP/bad.conf" > "$TMP/run_bad.out" 2>&1
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "run exits 1 on a bad schema file (got $rc)"
grep -q "SubscriptionEvent.v3.avsc" "$TMP/run_bad.out"; ok $? "run names the bad file"
rm "$TMP/bad/SubscriptionEvent.v3.avsc"
echo '{"type": "record", "name": "RelationshipEvent", "fields": []}' > "$TMP/bad/SubscriptionEvent.v3.avsc"
"$MCD_BIN" check-config -c "$TMP/bad.conf" > "$TMP/cc.out" 2>&1
ok $([ $? -eq 1 ]; echo $?) "check-config refuses a record whose name is not its file's"
diag < "$TMP/cc.out"
rm "$TMP/bad/SubscriptionEvent.v3.avsc"
"$MCD_BIN" check-config -c "$TMP/bad.conf" > "$TMP/cc.out" 2>&1
ok $? "check-config accepts the folder with the v2 writer"
grep -q "1 schema file" "$TMP/cc.out"; ok $? "check-config counts the schema file"
write_config "$TMP/missing.conf" "schemas.dir = $TMP/no-such-folder"
"$MCD_BIN" check-config -c "$TMP/missing.conf" > "$TMP/cc.out" 2>&1
ok $? "check-config accepts a schemas.dir that does not exist (no schema there)"
grep -q "warning: schemas.dir .*does not exist" "$TMP/cc.out"; ok $? "with a warning"

# ---- the streams ---------------------------------------------------------------
# cust-alpha and cust-bravo on their first day (v1, the reader schema).
cp "$MCD_SRCDIR/tests/fixtures/march_first_day.jsonl" "$TMP/part1.jsonl"
# Written with v2 before the daemon knows it: dead letters.
cat > "$TMP/part2.jsonl" <<'EOF'
{"event_id": "p2-a3", "occurred_at": "2026-03-02T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "p2-y1", "occurred_at": "2026-03-02T08:10:00.000Z", "customer_id": "cust-yankee", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
EOF
# Written with v2 after the file is dropped and SIGHUP: read.
cat > "$TMP/part3.jsonl" <<'EOF'
{"event_id": "p3-a3", "occurred_at": "2026-03-02T09:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "p3-b3", "occurred_at": "2026-03-02T10:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "p3-x1", "occurred_at": "2026-03-02T10:30:00.000Z", "customer_id": "cust-xray", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
EOF
# Subscriptions (v1, the reader schema) after them.
cat > "$TMP/part4.jsonl" <<'EOF'
{"event_id": "p4-a4", "occurred_at": "2026-03-03T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "sub-a", "target_partner_id": "partner-fabrikam"}
{"event_id": "p4-b4", "occurred_at": "2026-03-03T09:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "CspSubscriptionCreated", "subscription_id": "azure-b", "csp_subscription_id": "azure-csp-b", "partner_id": "partner-fabrikam"}
EOF
cat "$TMP/part1.jsonl" "$TMP/part3.jsonl" "$TMP/part4.jsonl" > "$TMP/read.jsonl"
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
$MCD replay --now "$now" --park-grace 7d "$TMP/read.jsonl" > "$TMP/want.raw"
ok $? "replay of the $(wc -l < "$TMP/read.jsonl") events the daemon must read"
strip_messages < "$TMP/want.raw" > "$TMP/want"
n_want=$(wc -l < "$TMP/want")
[ "$n_want" -ge 6 ]; ok $? "replay gives $n_want outcomes"

count_dlq() { "$MCD_BIN" tail -c "$1" --dlq --exit-at-end 2>/dev/null | wc -l; }
dlq_at_least() { [ "$(count_dlq "$1")" -ge "$2" ]; }
logged_at_least() { [ "$(grep -c "$2" "$1")" -ge "$3" ]; }

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/part1.jsonl" 2> "$TMP/publish.err"
ok $? "published part 1 (reader schemas)"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"; ok $? "daemon ready"
grep -q "schemas.dir $TMP/schemas: 0 writer schema file" "$TMP/daemon.log"
ok $? "daemon read the empty schema folder at start"

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --writer-schema "$TMP/RelationshipEvent.v2.avsc" "$TMP/part2.jsonl" \
        2>> "$TMP/publish.err"
ok $? "published part 2 with the v2 writer (publish --writer-schema)"
wait_until 60 dlq_at_least "$TMP/mcd.conf" 2
ok $? "part 2's events are dead letters"
"$MCD_BIN" tail -c "$TMP/mcd.conf" --dlq --exit-at-end > "$TMP/dlq1" 2>/dev/null
[ "$(grep -c '"error":"UNKNOWN_SCHEMA"' "$TMP/dlq1")" -eq 2 ] && [ "$(wc -l < "$TMP/dlq1")" -eq 2 ]
ok $? "both are UNKNOWN_SCHEMA ($(wc -l < "$TMP/dlq1") dead letters)"

cp "$TMP/RelationshipEvent.v2.avsc" "$TMP/schemas/"
kill -HUP "$DAEMON_PID"
wait_until 30 grep -q "schemas.dir $TMP/schemas: 1 writer schema file" "$TMP/daemon.log"
ok $? "SIGHUP: the daemon read the v2 writer from its schema folder"
# A bad file dropped next to it: logged, the schemas in use are kept.
echo 'not json' > "$TMP/schemas/SubscriptionEvent.v2.avsc"
kill -HUP "$DAEMON_PID"
wait_until 30 grep -q "writer schemas in use are kept: .*SubscriptionEvent.v2.avsc" "$TMP/daemon.log"
ok $? "SIGHUP with a bad file: logged with its name, the schemas in use kept"
wait_until 30 logged_at_least "$TMP/daemon.log" "reloaded " 2
ok $? "both reloads done"

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --writer-schema "$TMP/RelationshipEvent.v2.avsc" "$TMP/part3.jsonl" \
        2>> "$TMP/publish.err"
ok $? "published part 3 with the v2 writer"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/part4.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 4 (reader schemas)"
wait_until 90 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
sleep 2
[ "$(count_dlq "$TMP/mcd.conf")" -eq 2 ]
ok $? "no dead letter after the v2 writer was added ($(count_dlq "$TMP/mcd.conf") in all)"
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end 2> "$TMP/tail.err" | strip_messages > "$TMP/got"
diff "$TMP/want" "$TMP/got" | head -10 | cut -c1-250 | diag
cmp -s "$TMP/want" "$TMP/got"
ok $? "outcome topic equals replay's ($(wc -l < "$TMP/got") of $n_want)"

# ---- the dead letters re-driven (issue 14 part 3): part 2 comes in, once ------
# Re-driven, part 2's records follow part 3's on their partitions: replay of
# the events in the order the daemon reads them.
cat "$TMP/read.jsonl" "$TMP/part2.jsonl" > "$TMP/read2.jsonl"
$MCD replay --now "$now" --park-grace 7d "$TMP/read2.jsonl" | strip_messages > "$TMP/want2"
n_want2=$(wc -l < "$TMP/want2")
[ "$n_want2" -gt "$n_want" ]; ok $? "replay with part 2 re-driven gives $n_want2 outcomes"
$MCD redrive -c "$TMP/mcd.conf" --error UNKNOWN_SCHEMA > "$TMP/redrive.out" 2> "$TMP/redrive.err"
ok $? "redrive --error UNKNOWN_SCHEMA exits 0"
diag < "$TMP/redrive.out"
grep -q "^sent 2 of 2 selected, 0 failed$" "$TMP/redrive.out"; ok $? "it sent part 2's 2 letters"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want2"
ok $? "their outcomes are out"
sleep 2
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end 2> "$TMP/tail.err" | strip_messages > "$TMP/got2"
diff "$TMP/want2" "$TMP/got2" | head -10 | cut -c1-250 | diag
cmp -s "$TMP/want2" "$TMP/got2"
ok $? "outcome topic equals replay's with part 2 re-driven ($(wc -l < "$TMP/got2") of $n_want2)"
[ "$(count_dlq "$TMP/mcd.conf")" -eq 2 ]
ok $? "no new dead letter: the v2 writer is known now"
$MCD redrive -c "$TMP/mcd.conf" --error UNKNOWN_SCHEMA > "$TMP/redrive2.out" 2>&1
sleep 6         # merge_wait and a batch: time for any outcome to come out
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end 2> "$TMP/tail.err" | strip_messages > "$TMP/got3"
cmp -s "$TMP/want2" "$TMP/got3"
ok $? "re-driven twice: no outcome changes (rule 1 drops the repeated ids)"

kill -TERM "$DAEMON_PID"
wait_until 20 sh -c "! kill -0 $DAEMON_PID"
ok $? "daemon stops on SIGTERM"
wait "$DAEMON_PID"
rc=$?
ok $rc "daemon exits 0 after SIGTERM (exit $rc)"
no_sanitizer_report "$TMP/daemon.log"
grep -E "error|warning|schemas" "$TMP/daemon.log" | grep -v "kafka \|dead letter" | head -20 | diag
head -10 "$TMP/publish.err" | diag
tap_done

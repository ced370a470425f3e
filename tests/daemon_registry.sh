#!/bin/sh
# daemon_registry.sh -- the Confluent wire format with a Schema Registry
# (issue 14 part 2), against tests/registry_stub (the real REST paths and
# media type).  Events written with a v2 writer schema that adds an optional
# field, through both framings (single-object with the v2 file in
# schemas.dir, Confluent with the v2 schema in the registry), give replay's
# outcomes; outcomes are framed with the id the registry gave the outcome
# schema (output.format confluent); the registry down for a while (503 to a
# schema id the daemon has not seen) and then unreachable (stopped, started
# again on its port): consumption pauses, /healthz says why, no dead letter
# and no loss once it is back; an id the registry does not know: a dead
# letter UNKNOWN_SCHEMA.
. "$MCD_SRCDIR/tests/lib.sh"

TAB=$(printf '\t')
start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka 4; ok $? "mock cluster started at $BOOTSTRAP"
mkdir -p "$TMP/reg" "$TMP/schemas"
start_stub() {  # start_stub PORT: sets STUB_PID
        rm -f "$TMP/reg/port"
        "$MCD_BUILDDIR/tests/registry_stub" "$1" "$TMP/reg" 2>> "$TMP/stub.log" &
        STUB_PID=$!
        PIDS="$PIDS $STUB_PID"
        wait_until 20 test -s "$TMP/reg/port"
}
start_stub 0; ok $? "registry stub started"
STUB_PORT=$(cat "$TMP/reg/port")
REG="http://127.0.0.1:$STUB_PORT"
MPORT=$(free_port)
write_config "$TMP/mcd.conf" "park_grace = 7d" "merge_wait = 5s" "schemas.dir = $TMP/schemas" \
        "schema_registry.url = $REG" "output.format = confluent" "metrics.listen = 127.0.0.1:$MPORT"
write_config "$TMP/noreg.conf" "park_grace = 7d"

# v2: v1 with an optional envelope field first; v3: another one (an id the
# daemon has not seen when the registry goes down).
sed 's/^  "fields": \[$/  "fields": [\n    {"name": "source_system", "type": ["null", "string"], "default": null},/' \
        "$MCD_SRCDIR/schemas/RelationshipEvent.v1.avsc" > "$TMP/schemas/RelationshipEvent.v2.avsc"
sed 's/^  "fields": \[$/  "fields": [\n    {"name": "region", "type": ["null", "string"], "default": null},/' \
        "$MCD_SRCDIR/schemas/RelationshipEvent.v1.avsc" > "$TMP/RelationshipEvent.v3.avsc"
sed 's/^  "fields": \[$/  "fields": [\n    {"name": "tenant", "type": ["null", "string"], "default": null},/' \
        "$MCD_SRCDIR/schemas/RelationshipEvent.v1.avsc" > "$TMP/RelationshipEvent.v4.avsc"
grep -q source_system "$TMP/schemas/RelationshipEvent.v2.avsc" && grep -q region "$TMP/RelationshipEvent.v3.avsc"
ok $? "v2 and v3 writer schemas made from v1"

# cust-alpha and cust-bravo on their first day (v1, the reader schema).
cp "$MCD_SRCDIR/tests/fixtures/march_first_day.jsonl" "$TMP/part1.jsonl"
# v2 through the Confluent framing.
cat > "$TMP/part2.jsonl" <<'EOF'
{"event_id": "p2-a3", "occurred_at": "2026-03-02T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
{"event_id": "p2-x1", "occurred_at": "2026-03-02T08:10:00.000Z", "customer_id": "cust-xray", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
EOF
# v2 through single-object encoding (schemas.dir).
cat > "$TMP/part3.jsonl" <<'EOF'
{"event_id": "p3-b3", "occurred_at": "2026-03-02T10:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
# v3 through the Confluent framing while the registry is down, then
# subscriptions with the reader schema.
cat > "$TMP/part4.jsonl" <<'EOF'
{"event_id": "p4-x2", "occurred_at": "2026-03-02T10:30:00.000Z", "customer_id": "cust-xray", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
cat > "$TMP/part5.jsonl" <<'EOF'
{"event_id": "p5-a4", "occurred_at": "2026-03-03T08:00:00.000Z", "customer_id": "cust-alpha", "cloud": "COMMERCIAL", "type": "SwitchRequested", "subscription_id": "sub-a", "target_partner_id": "partner-fabrikam"}
{"event_id": "p5-b4", "occurred_at": "2026-03-03T09:00:00.000Z", "customer_id": "cust-bravo", "cloud": "COMMERCIAL", "type": "CspSubscriptionCreated", "subscription_id": "azure-b", "csp_subscription_id": "azure-csp-b", "partner_id": "partner-fabrikam"}
EOF
# v4 through the Confluent framing while the registry is unreachable.
cat > "$TMP/part6.jsonl" <<'EOF'
{"event_id": "p6-c1", "occurred_at": "2026-03-03T10:00:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "RelationshipRequested", "partner_id": "partner-fabrikam"}
{"event_id": "p6-c2", "occurred_at": "2026-03-03T10:30:00.000Z", "customer_id": "cust-charlie", "cloud": "COMMERCIAL", "type": "RelationshipAccepted", "partner_id": "partner-fabrikam"}
EOF
cat "$TMP/part1.jsonl" "$TMP/part2.jsonl" "$TMP/part3.jsonl" "$TMP/part4.jsonl" "$TMP/part5.jsonl" \
        "$TMP/part6.jsonl" > "$TMP/all.jsonl"
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
$MCD replay --now "$now" --park-grace 7d "$TMP/all.jsonl" > "$TMP/want.raw"
ok $? "replay of the $(wc -l < "$TMP/all.jsonl") events"
strip_messages < "$TMP/want.raw" > "$TMP/want"
n_want=$(wc -l < "$TMP/want")
[ "$n_want" -ge 6 ]; ok $? "replay gives $n_want outcomes"

count_dlq() { "$MCD_BIN" tail -c "$1" --dlq --exit-at-end 2>/dev/null | wc -l; }
dlq_at_least() { [ "$(count_dlq "$1")" -ge "$2" ]; }
healthz_says() { "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$MPORT" /healthz 2>/dev/null | grep -q "$1"; }

"$MCD_BIN" check-config -c "$TMP/mcd.conf" > "$TMP/cc.out" 2>&1 && grep -q "schema registry $REG: .*outcomes framed" "$TMP/cc.out"
ok $? "check-config names the registry and the outcome framing"
write_config "$TMP/alone.conf" "output.format = confluent"
"$MCD_BIN" check-config -c "$TMP/alone.conf" > "$TMP/cc.out" 2>&1
[ $? -eq 1 ] && grep -q "output.format: confluent needs schema_registry.url" "$TMP/cc.out"
ok $? "check-config refuses output.format = confluent without schema_registry.url"
"$MCD_BIN" publish -c "$TMP/mcd.conf" --format nonsense "$TMP/part1.jsonl" 2> "$TMP/bad.err"
ok $([ $? -ne 0 ]; echo $?) "publish refuses --format nonsense"
"$MCD_BIN" publish -c "$TMP/noreg.conf" --format confluent "$TMP/part1.jsonl" 2> "$TMP/bad.err"
[ $? -ne 0 ] && grep -q "schema_registry.url" "$TMP/bad.err"
ok $? "publish --format confluent without schema_registry.url: an error naming the key"

"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" "$TMP/part1.jsonl" 2> "$TMP/publish.err"
ok $? "published part 1 (single-object, reader schemas)"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --format confluent --writer-schema "$TMP/schemas/RelationshipEvent.v2.avsc" \
        "$TMP/part2.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 2 (Confluent framing, v2 writer registered)"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --writer-schema "$TMP/schemas/RelationshipEvent.v2.avsc" \
        "$TMP/part3.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 3 (single-object, v2 writer)"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"; ok $? "daemon ready"
grep -q "outcome schema registered under partnercenter.multichannel.outcomes.v1-value as id" "$TMP/daemon.log"
ok $? "the outcome schema registered under <topic.outcomes>-value at start"
n3=$(cat "$TMP/part1.jsonl" "$TMP/part2.jsonl" "$TMP/part3.jsonl" | $MCD replay --now "$now" --park-grace 7d | wc -l)
wait_until 90 outcomes_at_least "$TMP/mcd.conf" "$n3"
ok $? "parts 1-3 read: $n3 outcomes"

# ---- the registry down for a while -------------------------------------------
kill -STOP "$DAEMON_PID"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --format confluent --writer-schema "$TMP/RelationshipEvent.v3.avsc" \
        "$TMP/part4.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 4 (Confluent framing, a v3 writer the daemon has not seen)"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --format confluent "$TMP/part5.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 5 (Confluent framing, reader schema)"
touch "$TMP/reg/down"
kill -CONT "$DAEMON_PID"
wait_until 60 grep -q "consumption paused, retrying" "$TMP/daemon.log"
ok $? "registry down: the daemon logs that consumption is paused"
wait_until 20 healthz_says "schema registry"
ok $? "/healthz says the schema registry is why"
sleep 4
[ "$(count_dlq "$TMP/mcd.conf")" -eq 0 ]; ok $? "no dead letter while the registry is down"
rm "$TMP/reg/down"
wait_until 60 grep -q "answers again; consumption resumed" "$TMP/daemon.log"
ok $? "registry back: consumption resumed (logged)"
n5=$(cat "$TMP/part1.jsonl" "$TMP/part2.jsonl" "$TMP/part3.jsonl" "$TMP/part4.jsonl" "$TMP/part5.jsonl" |
        $MCD replay --now "$now" --park-grace 7d | wc -l)
wait_until 90 outcomes_at_least "$TMP/mcd.conf" "$n5"
ok $? "parts 4-5 read after the 503s: $n5 outcomes"
wait_until 20 sh -c "! \"$MCD_BUILDDIR/tests/http_get\" 127.0.0.1:$MPORT /healthz 2>/dev/null | grep -q registry"
ok $? "/healthz no longer names the registry"

# ---- the registry unreachable for a while ---------------------------------------
kill -STOP "$DAEMON_PID"
"$MCD_BIN" publish --in-order -c "$TMP/mcd.conf" --format confluent --writer-schema "$TMP/RelationshipEvent.v4.avsc" \
        "$TMP/part6.jsonl" 2>> "$TMP/publish.err"
ok $? "published part 6 (Confluent framing, a v4 writer the daemon has not seen)"
kill -TERM "$STUB_PID"
wait "$STUB_PID" 2>/dev/null
kill -CONT "$DAEMON_PID"
wait_until 60 grep -q "consumption paused, retrying in [0-9]* ms: .*did not answer" "$TMP/daemon.log"
ok $? "registry unreachable: consumption paused (logged)"
wait_until 20 healthz_says "schema registry"
ok $? "/healthz says the schema registry is why"
sleep 3
[ "$(count_dlq "$TMP/mcd.conf")" -eq 0 ]; ok $? "no dead letter while the registry is unreachable"
start_stub "$STUB_PORT"; ok $? "registry started again on its port"
wait_until 90 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"
[ "$(grep -c "answers again; consumption resumed" "$TMP/daemon.log")" -ge 2 ]
ok $? "consumption resumed after each outage (logged)"
sleep 2
"$MCD_BIN" tail -c "$TMP/mcd.conf" --exit-at-end 2> "$TMP/tail.err" | strip_messages > "$TMP/got"
diff "$TMP/want" "$TMP/got" | head -10 | cut -c1-250 | diag
cmp -s "$TMP/want" "$TMP/got"
ok $? "outcome topic equals replay's ($(wc -l < "$TMP/got") of $n_want): no loss, none twice"
[ "$(count_dlq "$TMP/mcd.conf")" -eq 0 ]; ok $? "no dead letter after the outages"

# Outcomes are Confluent-framed: without the registry tail cannot read them.
"$MCD_BIN" tail -c "$TMP/noreg.conf" --exit-at-end > "$TMP/noreg.out" 2> "$TMP/noreg.err"
[ ! -s "$TMP/noreg.out" ] && grep -q "UNKNOWN_SCHEMA.*Confluent wire format" "$TMP/noreg.err"
ok $? "outcomes are in the Confluent wire format (tail without a registry cannot read them)"

# ---- an id the registry does not know ------------------------------------------
printf 'cust-alpha\t000000270f0000\n' |
        "$MCD_BUILDDIR/tests/produce_raw" -b "$BOOTSTRAP" -t partnercenter.relationships.v1 \
        > /dev/null 2>> "$TMP/publish.err"
ok $? "produced a message naming schema id 9999"
wait_until 60 dlq_at_least "$TMP/mcd.conf" 1
ok $? "it is dead-lettered"
"$MCD_BIN" tail -c "$TMP/mcd.conf" --dlq --exit-at-end > "$TMP/dlq" 2>/dev/null
[ "$(wc -l < "$TMP/dlq")" -eq 1 ] && grep -q '"error":"UNKNOWN_SCHEMA"' "$TMP/dlq"
ok $? "one dead letter, UNKNOWN_SCHEMA"
cut -c1-300 "$TMP/dlq" | diag

# A changed registry key on SIGHUP: applied at the next start, and said so.
echo "schema_registry.timeout = 7s" >> "$TMP/mcd.conf"
kill -HUP "$DAEMON_PID"
wait_until 30 grep -q "reload: changes to .*schema_registry\.\* or output\.format keys take effect at the next start" \
        "$TMP/daemon.log"
ok $? "SIGHUP with schema_registry.timeout changed: logged as taking effect at the next start"

kill -TERM "$DAEMON_PID"
wait_until 20 sh -c "! kill -0 $DAEMON_PID"
ok $? "daemon stops on SIGTERM"
wait "$DAEMON_PID"
ok $? "daemon exits 0 after SIGTERM"
no_sanitizer_report "$TMP/daemon.log"
grep -E "registry|error" "$TMP/daemon.log" | grep -v "kafka " | head -12 | cut -c1-250 | diag
head -5 "$TMP/publish.err" | diag
tap_done

#!/bin/sh
# cli.sh -- the operator's command line: check-config names each bad line
# and exits 1, accepts the shipped default file, prints the effective
# configuration (--print); usage errors name the argument and exit 2.
. "$MCD_SRCDIR/tests/lib.sh"

cat > "$TMP/bad.conf" <<'CONF'
# a comment
redis.port = 99999
kafka.bootstrap.servers = localhost:9092
no equals sign here
park_grace = soon
kafka.no.such.property = 1
wat = 1
limits.parked = 0
dedup_window = 5m
redis.sentinels = 127.0.0.1:26379,localhost
CONF
$MCD check-config -c "$TMP/bad.conf" > "$TMP/out" 2> "$TMP/err"
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "check-config exits 1 on a bad file (got $rc)"
diag < "$TMP/err"
for l in 2 4 5 6 7 8 9 10; do
        grep -q "bad.conf:$l: " "$TMP/err"
        ok $? "check-config names line $l"
done
grep -q "bad.conf:3:" "$TMP/err"
ok $([ $? -ne 0 ]; echo $?) "a good line is not reported"

$MCD check-config -c "$MCD_SRCDIR/systemd/multichanneld.conf" > "$TMP/out" 2>&1
ok $? "the shipped default configuration passes check-config"
$MCD check-config -c "$TMP/missing.conf" > "$TMP/out" 2>&1
ok $([ $? -eq 1 ]; echo $?) "a missing file is an error"
grep -q "missing.conf" "$TMP/out"
ok $? "... that names the file"

# --print: the effective configuration, a file that loads to the same again;
# credentials set are comments without their values.
cat > "$TMP/print.conf" <<'CONF'
topic.outcomes = out.v2
park_grace = 90m
log.level = warn
redis.outbox_compression = none
redis.password = hunter2
kafka.sasl.password = hunter3
kafka.sasl.username = hunter4
schema_registry.url = https://reader:hunter5@registry.example:8081
kafka.bootstrap.servers = broker-1:9092
CONF
$MCD check-config -c "$TMP/print.conf" --print > "$TMP/printed" 2> "$TMP/err"
ok $? "check-config --print accepts the file"
grep -qx "topic.outcomes = out.v2" "$TMP/printed" && grep -qx "park_grace = 90m" "$TMP/printed" &&
        grep -qx "log.level = warning" "$TMP/printed" && grep -qx "redis.outbox_compression = none" "$TMP/printed" &&
        grep -qx "kafka.bootstrap.servers = broker-1:9092" "$TMP/printed"
ok $? "--print gives the file's values in its format (durations, level names, value names)"
grep -qx "dedup_window = 30d" "$TMP/printed" && grep -qx "batch.max_events = 1000" "$TMP/printed" &&
        grep -qx "output.format = single-object" "$TMP/printed" &&
        grep -qx "kafka.group.id = multichanneld" "$TMP/printed" && grep -qx "redis.sentinels =" "$TMP/printed"
ok $? "--print gives the defaults of the keys the file leaves out, kafka.group.id among them"
grep -q hunter "$TMP/printed"
ok $([ $? -ne 0 ]; echo $?) "--print prints no credential"
grep -qx "# redis.password = (set; not printed)" "$TMP/printed" &&
        grep -qx "# kafka.sasl.password = (set; not printed)" "$TMP/printed" &&
        grep -qx "# kafka.sasl.username = (set; not printed)" "$TMP/printed" &&
        grep -qx "# schema_registry.url = (set; not printed)" "$TMP/printed"
ok $? "... and says which are set"
: > "$TMP/diff"
$MCD check-config -c "$TMP/printed" --print > "$TMP/again" 2> "$TMP/err" &&
        grep -v "password\|username\|url" "$TMP/printed" > "$TMP/a" &&
        grep -v "password\|username\|url" "$TMP/again" | diff "$TMP/a" - > "$TMP/diff" &&
        grep -qx "redis.password =" "$TMP/again"
ok $? "what --print wrote loads, and prints the same again (the credentials left out)"
diag < "$TMP/diff"
$MCD check-config -c "$TMP/bad.conf" --print > "$TMP/out" 2> "$TMP/err"
rc=$?
[ $rc -eq 1 ] && [ ! -s "$TMP/out" ] && grep -q "bad.conf:2: " "$TMP/err"
ok $? "--print of a bad file prints nothing but the bad lines, exit 1 (got $rc)"

expect_usage() {  # expect_usage PATTERN DESCRIPTION -- COMMAND...
        pat=$1; what=$2; shift 3
        $MCD "$@" > /dev/null 2> "$TMP/err"
        rc=$?
        grep -q -- "$pat" "$TMP/err" && [ $rc -eq 2 ]
        ok $? "$what (exit $rc)"
}
expect_usage "unknown or incomplete option '--frob'" "run: unknown option named" -- run --frob
expect_usage "run: unknown or incomplete option '-x' (in '-xc')" "run: an unknown letter in a group named, not the argument before" -- run --embedded-kafka -xc f.conf
expect_usage "tail: unknown or incomplete option '-c'$" "tail: an option without its argument named" -- tail -c
expect_usage "state: unknown or incomplete option '--config'" "state: a long option without its argument named" -- state --config
expect_usage "--partitions: expected 1..1024, got 'x'" "run: bad --partitions named" -- run --embedded-kafka --partitions x
expect_usage "--topic: expected relationships or subscriptions, got 'x'" "publish: bad --topic named" -- publish --topic x
expect_usage "expected a CUSTOMER_ID argument" "state: missing argument named" -- state
expect_usage "unexpected argument 'extra'" "tail: stray argument named" -- tail extra
expect_usage "lag: unexpected argument 'extra'" "lag: stray argument named" -- lag extra
expect_usage "lag: unknown or incomplete option '--frob'" "lag: unknown option named" -- lag --frob
expect_usage "unknown command 'frobnicate'" "unknown command named" -- frobnicate
expect_usage "whatif: expected a CUSTOMER_ID argument" "whatif: missing argument named" -- whatif
expect_usage "whatif: --now: invalid time 'soon'" "whatif: bad --now named" -- whatif --now soon cust-1
expect_usage "whatif: unexpected argument 'extra'" "whatif: a second FILE named" -- whatif cust-1 a.jsonl extra
expect_usage "redrive: --error: unknown code 'NOPE'" "redrive: unknown --error code named" -- redrive --error NOPE
expect_usage "redrive: --since: invalid time 'x'" "redrive: bad --since named" -- redrive --since x
expect_usage "redrive: unexpected argument 'extra'" "redrive: stray argument named" -- redrive extra
expect_usage "--dedup-window: invalid duration 'soon'" "replay: bad --dedup-window named" -- replay --dedup-window soon
expect_usage "--dedup-window: invalid duration '0s'" "replay: a zero --dedup-window refused" -- replay --dedup-window 0s
expect_usage "--max-seen-ids: invalid count '0'" "replay: --max-seen-ids 0 refused" -- replay --max-seen-ids 0
expect_usage "--max-subscriptions: invalid count 'x'" "replay: bad --max-subscriptions named" -- replay --max-subscriptions x
expect_usage "--max-parked: invalid count '-1'" "replay: bad --max-parked named" -- replay --max-parked -1
expect_usage "--dedup-window: '5m' is shorter than the park grace (20m)" "replay: --dedup-window below --park-grace refused" \
        -- replay --park-grace 20m --dedup-window 5m
expect_usage "--park-grace: '31d' is longer than the dedup window" "replay: --park-grace above the default window refused" \
        -- replay --park-grace 31d

echo '{"type":"record","name":"SubscriptionEvent","fields":"x"}' > "$TMP/bad.avsc"
expect_usage "--writer-schema: $TMP/bad.avsc: not an Avro schema: " "publish: a writer schema Avro refuses named" \
        -- publish -b 127.0.0.1:1 --writer-schema "$TMP/bad.avsc" /dev/null

# Input that cannot be read, or is not what it looks like, is said so with
# its line and exit 1; nothing is skipped silently.
printf '\n\000{"event_id":"x"}\n' > "$TMP/nul.jsonl"
$MCD replay "$TMP/nul.jsonl" > /dev/null 2> "$TMP/err"
rc=$?
grep -q "^line 2: " "$TMP/err" && [ $rc -eq 1 ]
ok $? "replay: a line starting with a NUL byte is a bad line, not a blank one (exit $rc)"
$MCD replay "$TMP" > /dev/null 2> "$TMP/err"
rc=$?
grep -q "^line 1: cannot read: Is a directory" "$TMP/err" && [ $rc -ne 0 ]
ok $? "replay: a read error names the line and the reason (exit $rc)"
$MCD publish -b 127.0.0.1:1 "$TMP" > /dev/null 2> "$TMP/err"
rc=$?
grep -q "^line 1: cannot read: Is a directory; the rest is not published" "$TMP/err" && [ $rc -eq 1 ]
ok $? "publish: a read error is not a success (exit $rc)"
echo keep > "$TMP/states.json"
expect_usage "--max-parked: invalid count '0'" "replay: a bad option after --state-out named" \
        -- replay --state-out "$TMP/states.json" --max-parked 0 "$TMP/nul.jsonl"
[ "$(cat "$TMP/states.json")" = keep ]
ok $? "replay: ... and the --state-out file left as it was"

# replay's bounds (CONTRACT.md "Bounds"): an event before the customer's
# horizon is EVENT_TOO_OLD, where the default keeps its id and drops it as a
# duplicate.
ev() {  # ev EVENT_ID TIME TYPE FIELDS: one input line for customer c-1
        echo "{\"event_id\":\"$1\",\"occurred_at\":\"2026-01-05T$2:00.000Z\",\"customer_id\":\"c-1\",\"cloud\":\"COMMERCIAL\",\"type\":\"$3\",$4}"
}
rel() { ev "$1" "$2" RelationshipRequested '"partner_id":"p-1"'; }
replay_reasons() {  # replay_reasons INPUT OPTIONS...: the rejection reasons, one a line
        in=$1; shift
        $MCD replay "$@" "$in" > "$TMP/replay.out" 2> "$TMP/replay.err" || { echo "replay failed"; return 1; }
        grep -o '"reason":"[A-Z_]*"' "$TMP/replay.out" | sed 's/.*:"\(.*\)"/\1/'
}
{ rel r-1 10:00; rel r-2 10:01; rel r-3 10:02; rel r-1 10:00; } > "$TMP/seen.jsonl"
[ "$(replay_reasons "$TMP/seen.jsonl")" = "" ] && [ "$(wc -l < "$TMP/replay.out")" -eq 1 ]
ok $? "replay: a repeated id is a duplicate by default (no output)"
[ "$(replay_reasons "$TMP/seen.jsonl" --max-seen-ids 2)" = EVENT_TOO_OLD ]
ok $? "replay --max-seen-ids 2: the repeat of a forgotten id is EVENT_TOO_OLD"
{ rel r-1 10:00; rel r-2 12:00; rel r-1 10:00; } > "$TMP/window.jsonl"
[ "$(replay_reasons "$TMP/window.jsonl")" = "" ] && [ "$(wc -l < "$TMP/replay.out")" -eq 1 ]
ok $? "replay: a repeat within the default window is a duplicate"
[ "$(replay_reasons "$TMP/window.jsonl" --dedup-window 1h)" = EVENT_TOO_OLD ]
ok $? "replay --dedup-window 1h: a repeat from before the window is EVENT_TOO_OLD"
sub='"offer_name":"Azure plan","billing":"USAGE_BASED","channel":"DIRECT"'
{ ev s-1 10:00 SubscriptionReported "\"subscription_id\":\"sub-1\",$sub"
  ev s-2 10:01 SubscriptionReported "\"subscription_id\":\"sub-2\",$sub"
  rel r-1 10:02
  ev w-1 10:03 SwitchRequested '"subscription_id":"sub-1","target_partner_id":"p-1"'
  ev w-2 10:04 SwitchRequested '"subscription_id":"sub-1","target_partner_id":"p-1"'
} > "$TMP/limits.jsonl"
[ "$(replay_reasons "$TMP/limits.jsonl")" = "" ]
ok $? "replay: two subscriptions and two parked events within the default limits"
[ "$(replay_reasons "$TMP/limits.jsonl" --max-subscriptions 1)" = SUBSCRIPTION_LIMIT ]
ok $? "replay --max-subscriptions 1: the second subscription is SUBSCRIPTION_LIMIT"
[ "$(replay_reasons "$TMP/limits.jsonl" --max-parked 1)" = PARK_LIMIT ]
ok $? "replay --max-parked 1: the second parked event is PARK_LIMIT"

# A fault: one log line naming the signal, a backtrace, then the default
# action (exit status 128+11).  Under AddressSanitizer its own report.
"$MCD_BIN" mock-cluster --partitions 1 > "$TMP/crash.boot" 2> "$TMP/crash.err" &
crash_pid=$!
wait_until 30 test -s "$TMP/crash.boot"
kill -SEGV "$crash_pid"
wait "$crash_pid"
rc=$?
[ "$rc" -eq 139 ] || grep -q "AddressSanitizer" "$TMP/crash.err"
ok $? "a process that gets SIGSEGV dies of it (exit $rc)"
grep -q "crit: crashed by SIGSEGV (sent by pid [0-9]*); backtrace follows" "$TMP/crash.err" &&
        [ "$(grep -c "multichanneld(" "$TMP/crash.err")" -ge 2 ] ||
        grep -q "AddressSanitizer" "$TMP/crash.err"
ok $? "its last word names the signal and gives a backtrace"
grep -A4 "crashed by" "$TMP/crash.err" | diag

$MCD help > "$TMP/help"
grep -q "check-config" "$TMP/help" && grep -q "  lag " "$TMP/help" && grep -q "  whatif " "$TMP/help" &&
        grep -q "  redrive " "$TMP/help"
ok $? "help lists the subcommands, lag, whatif and redrive among them"
tap_done

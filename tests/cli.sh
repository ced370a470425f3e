#!/bin/sh
# cli.sh -- the operator's command line: check-config names each bad line
# and exits 1, accepts the shipped default file; usage errors name the
# argument and exit 2.
. "$MCD_SRCDIR/tests/lib.sh"

cat > "$TMP/bad.conf" <<'CONF'
# a comment
redis.port = 99999
kafka.bootstrap.servers = localhost:9092
no equals sign here
park_grace = soon
kafka.no.such.property = 1
wat = 1
CONF
$MCD check-config -c "$TMP/bad.conf" > "$TMP/out" 2> "$TMP/err"
rc=$?
ok $([ $rc -eq 1 ]; echo $?) "check-config exits 1 on a bad file (got $rc)"
diag < "$TMP/err"
for l in 2 4 5 6 7; do
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

expect_usage() {  # expect_usage PATTERN DESCRIPTION -- COMMAND...
        pat=$1; what=$2; shift 3
        $MCD "$@" > /dev/null 2> "$TMP/err"
        rc=$?
        grep -q -- "$pat" "$TMP/err" && [ $rc -eq 2 ]
        ok $? "$what (exit $rc)"
}
expect_usage "unknown or incomplete option '--frob'" "run: unknown option named" -- run --frob
expect_usage "--partitions: expected 1..1024, got 'x'" "run: bad --partitions named" -- run --embedded-kafka --partitions x
expect_usage "--topic: expected relationships or subscriptions, got 'x'" "publish: bad --topic named" -- publish --topic x
expect_usage "expected a CUSTOMER_ID argument" "state: missing argument named" -- state
expect_usage "unexpected argument 'extra'" "tail: stray argument named" -- tail extra
expect_usage "unknown command 'frobnicate'" "unknown command named" -- frobnicate
$MCD help | grep -q "check-config"
ok $? "help lists the subcommands"
tap_done

#!/bin/sh
# scenarios.sh -- the contract's worked examples (tests/scenarios, copied from
# the shared scenarios): replay's output equals NAME.expected.jsonl in every
# field but "message", which is non-empty; and replay is byte-identical on a
# second run.
. "$MCD_SRCDIR/tests/lib.sh"

for input in "$MCD_SRCDIR"/tests/scenarios/*.expected.jsonl; do
        name=$(basename "$input" .expected.jsonl)
        dir=$(dirname "$input")
        set --
        [ -f "$dir/$name.now" ] && set -- --now "$(tr -d ' \n' < "$dir/$name.now")"
        $MCD replay "$@" "$dir/$name.jsonl" > "$TMP/$name.out" 2> "$TMP/$name.err"
        ok $? "$name: replay exits 0"
        "$MCD_BUILDDIR/tests/jsonl_diff" "$dir/$name.expected.jsonl" "$TMP/$name.out" 2>&1 | diag
        ok $(( $(cat "$TMP/$name.err" | wc -c) )) "$name: nothing on stderr"
        "$MCD_BUILDDIR/tests/jsonl_diff" "$dir/$name.expected.jsonl" "$TMP/$name.out" >/dev/null 2>&1
        ok $? "$name: outcomes equal the expected ones"
        $MCD replay "$@" < "$dir/$name.jsonl" > "$TMP/$name.out2" 2>/dev/null
        cmp -s "$TMP/$name.out" "$TMP/$name.out2"
        ok $? "$name: byte-identical from standard input on a second run"
done
tap_done

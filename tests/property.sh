#!/bin/sh
# property.sh -- long random event streams (thousands of events, many
# customers) through replay: it never crashes, never emits an outcome id
# twice, and gives byte-identical output on a second run.
. "$MCD_SRCDIR/tests/lib.sh"

for seed in 1 2 3 4 5; do
        gen_events -s $seed -n 6000 -c $((seed * 150)) > "$TMP/in.jsonl"
        $MCD replay --now 2030-01-01T00:00:00.000Z "$TMP/in.jsonl" > "$TMP/a" 2> "$TMP/err"
        ok $? "seed $seed: replay of 6000 events exits 0"
        diag < "$TMP/err"
        $MCD replay --now 2030-01-01T00:00:00.000Z "$TMP/in.jsonl" > "$TMP/b" 2>/dev/null
        cmp -s "$TMP/a" "$TMP/b"
        ok $? "seed $seed: second run byte-identical"
        n=$(wc -l < "$TMP/a")
        dups=$(grep -o '^{"event_id":"[^"]*"' "$TMP/a" | sort | uniq -d | wc -l)
        ok $([ "$dups" -eq 0 ]; echo $?) "seed $seed: $n outcomes, no outcome id twice ($dups repeated)"
        types=$(grep -o '"type":"[A-Za-z]*"' "$TMP/a" | sort -u | wc -l)
        ok $([ "$types" -ge 8 ]; echo $?) "seed $seed: the stream reaches $types outcome types"
done
tap_done

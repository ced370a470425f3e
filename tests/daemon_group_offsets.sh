#!/bin/sh
# daemon_group_offsets.sh -- consumer lag in the standard tools: the daemon
# copies the offsets Redis holds to its consumer group, for both input topics,
# so that lag monitors (which read a group's committed offsets) see it.
# While it processes a stream, is killed with SIGKILL mid-stream and
# restarted, every sample of the group's committed offsets (read with
# `multichanneld lag`, a consumer of the group that never joins it) is at or
# below what Redis holds right after (mcd:off:<partition>, fields rel and sub,
# read with redis-cli).  Once it has caught up, the group's offsets equal the
# end (high watermark) of every partition of both topics, and still do after
# a clean stop.  The kill is shown to land mid-stream, and the sampling to
# leave the group undisturbed.  MCD_GROUP_OFFSETS_EVENTS scales it down.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_GROUP_OFFSETS_EVENTS:-8000}
PARTS=4
REL_TOPIC=partnercenter.relationships.v1
METRICS_PORT=$(free_port)
# The stream is published in pieces while the daemon runs, each piece to
# both topics at once: merge_wait covers one topic's piece arriving after the
# other's on a loaded machine.
start_services $PARTS "batch.max_events = 20" "batch.wait = 10ms" "status.interval = 1s" \
        "metrics.listen = 127.0.0.1:$METRICS_PORT" "merge_wait = 5s"

current_stream 23 "$EVENTS" 200 "$TMP/in.jsonl"
expect_replay --now "$(utc_now)" "$TMP/in.jsonl"

# sample PHASE: reads the group's offsets (multichanneld lag), then Redis's
# (redis-cli), and appends a line per partition and topic to $TMP/samples:
# "PHASE PARTITION SIDE GROUP REDIS END", "-" for nothing stored.  In that
# order a copy taken from Redis can never look ahead of it by the reading's
# timing alone.  $TMP/last holds the last sample's lines.
n_samples=0
lag_failed=0
sample() {
        n_samples=$((n_samples + 1))
        "$MCD_BIN" lag -c "$TMP/mcd.conf" > "$TMP/lag.out" 2> "$TMP/lag.err" || {
                lag_failed=$((lag_failed + 1))
                sed "s/^/sample $n_samples: /" "$TMP/lag.err" | head -3 | diag
        }
        seq 0 $((PARTS - 1)) | sed 's/.*/HMGET mcd:off:& rel sub/' | redis-cli -p "$REDIS_PORT" --csv |
                tr -d '"' | tr ',' ' ' | awk '{ print NR - 1, $0 }' > "$TMP/redis.out"
        awk -v phase="$1" -v rel="$REL_TOPIC" '
                FILENAME ~ /redis.out$/ { r["rel", $1] = $2 == "NULL" ? "-" : $2
                                          r["sub", $1] = $3 == "NULL" ? "-" : $3; next }
                $1 ~ /^[0-9]+$/ { side = $2 == rel ? "rel" : "sub"
                                  print phase, $1, side, $4, r[side, $1], $5 }' \
                "$TMP/redis.out" "$TMP/lag.out" > "$TMP/last"
        cat "$TMP/last" >> "$TMP/samples"
}
# Rows of the last sample: whose group offset is not the partition's end;
# whose group offset is set, and below the end.  The share of the input
# Redis holds, in percent.
behind_end() { awk '$4 != $6' "$TMP/last" | wc -l; }
group_mid() { awk '$4 != "-" && $4 > 0 && $4 < $6' "$TMP/last" | wc -l; }
progress() { awk '$5 != "-" { d += $5 } { e += $6 } END { print (e > 0 ? int(100 * d / e) : 0) }' "$TMP/last"; }
moving() { sample before; [ "$(group_mid)" -gt 0 ] && [ "$(progress)" -ge 25 ]; }
caught_up() { sample after; [ "$(wc -l < "$TMP/last")" -eq $((2 * PARTS)) ] && [ "$(behind_end)" -eq 0 ]; }

# ---- a run, sampled, killed mid-stream ----------------------------------------
# Sampled until Redis holds a quarter of the input and the group's offsets
# show the stream partly read, then killed: mid-stream whatever the speed,
# short of the daemon reading three quarters of the input during one sample.
# The input goes out in pieces of 100, a fifth of a second apart, so that a
# daemon faster than the sampling (an optimised build on a small stream)
# still meets the kill with input left to read.
split -l 100 "$TMP/in.jsonl" "$TMP/piece."
(
        for f in "$TMP"/piece.*; do
                publish_events "$f" || exit 1
                sleep 0.2
        done
) &
PUBLISHER=$!
start_daemon "$TMP/mcd.conf" "$TMP/daemon.1.log"
wait_until 120 moving
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
wait "$PUBLISHER"
ok $? "published $EVENTS events in pieces while the daemon ran ($n_want outcomes expected)"
at_kill=$(progress)
seen=$(count_outcomes "$TMP/mcd.conf")
[ "$seen" -gt 0 ] && [ "$seen" -lt "$n_want" ]
ok $? "SIGKILL lands mid-stream: $seen of $n_want outcomes on the topic (Redis held $at_kill% of the input at the last sample)"
sample down
left=$(awk '$5 != "-" { s += $6 - $5 } $5 == "-" { s += $6 } END { print s + 0 }' "$TMP/last")
[ "$left" -gt 0 ]
ok $? "... with $left input messages not yet committed to Redis"
mid=$(awk '$1 == "before" && $4 != "-" && $4 > 0 && $4 < $6' "$TMP/samples" | wc -l)
[ "$mid" -gt 0 ]
ok $? "before the kill the group's offsets moved with the stream ($mid sampled rows between 0 and the end)"

# ---- restarted: catches up ----------------------------------------------------
start_daemon "$TMP/mcd.conf" "$TMP/daemon.2.log"
wait_until 240 caught_up
ok $? "after the restart, the group's committed offsets reach the end of every partition"
awk '{ print "partition " $2 " " $3 ": group " $4 ", Redis " $5 ", end " $6 }' "$TMP/last" | diag
rel_rows=$(awk '$3 == "rel" && $6 > 0' "$TMP/last" | wc -l)
sub_rows=$(awk '$3 == "sub" && $6 > 0' "$TMP/last" | wc -l)
[ "$rel_rows" -eq $PARTS ] && [ "$sub_rows" -eq $PARTS ]
ok $? "both topics, every partition holding input: $rel_rows relationships and $sub_rows subscriptions partitions"
awk '$5 != $6' "$TMP/last" | diag
[ "$(awk '$5 != $6' "$TMP/last" | wc -l)" -eq 0 ]
ok $? "... and Redis holds the same offsets"

# ---- never ahead of Redis -------------------------------------------------------
# Redis holding nothing ("-" or -1) resumes at the partition's beginning, 0 here:
# the copy a pair sends before its first batch (its first offsets, with
# where its outputs begin: tasks.c send_origin) says 0, and is not ahead.
awk '{ redis = ($5 == "-" || $5 + 0 < 0) ? 0 : $5 + 0 } $4 != "-" && $4 + 0 > redis' "$TMP/samples" > "$TMP/ahead"
head -5 "$TMP/ahead" | sed 's/^/ahead: /' | diag
n_rows=$(wc -l < "$TMP/samples")
n_before=$(awk '$1 == "before"' "$TMP/samples" | wc -l)
n_after=$(awk '$1 == "after"' "$TMP/samples" | wc -l)
[ ! -s "$TMP/ahead" ] && [ "$n_before" -gt 0 ] && [ "$n_after" -gt 0 ]
ok $? "in $n_samples samples ($n_rows rows, $n_before before the kill, $n_after after the restart) the group is never ahead of Redis"
ok $lag_failed "multichanneld lag read every sample ($lag_failed failed)"

# The offsets say nothing of the outputs: those of the batches the kill cut
# short are published by the restarted daemon's reconciliation.
wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
sleep 2
assert_exactly_once "$TMP/mcd.conf" ""
metric() {  # metric NAME: its value on /metrics
        "$MCD_BUILDDIR/tests/http_get" "127.0.0.1:$METRICS_PORT" /metrics 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'
}
group_commits_counted() { [ "$(metric multichanneld_group_commits_total)" -gt 0 ]; }
wait_until 10 group_commits_counted; st=$?
commits=$(metric multichanneld_group_commits_total)
failures=$(metric multichanneld_group_commit_failures_total)
ok $st "/metrics counts the group commits ($commits, $failures failed)"
revoked=$(grep -c "revoked" "$TMP/daemon.2.log")
ok "$revoked" "sampling never disturbed the group: no partition revoked from the running instance ($revoked)"
stop_daemon_ok
$MCD lag -c "$TMP/mcd.conf" > "$TMP/lag.final" 2> "$TMP/lag.err"
ok $? "multichanneld lag exits 0 once the daemon has left"
awk '$1 ~ /^[0-9]+$/ && ($3 != $4 || $4 != $5 || $6 != 0)' "$TMP/lag.final" | diag
[ "$(awk '$1 ~ /^[0-9]+$/ && $3 == $4 && $4 == $5 && $6 == 0' "$TMP/lag.final" | wc -l)" -eq $((2 * PARTS)) ]
ok $? "after a clean stop REDIS, GROUP and END agree on all $((2 * PARTS)) rows, LAG 0"
tap_done

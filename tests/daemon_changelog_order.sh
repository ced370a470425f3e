#!/bin/sh
# daemon_changelog_order.sh -- a batch's offsets record goes to the
# changelog only once its customers' records are acknowledged.  Customer
# and offsets records have different keys, so they go to different
# changelog partitions, each on its own way to the broker: appended
# together, the offsets record could be in the changelog while a
# customer's record is still in flight, and a process lost with its Redis
# (a host's power) would leave a changelog whose offsets are past that
# customer's last record; a rebuild from it would never apply those events
# again.  Here the changelog partition of one customer's record is on a
# broker of its own that holds its first Produce answer DELAY ms (the
# record is appended, its delivery report is held): while it is held, the
# partition's offsets record must not be in the changelog, and it must
# follow once the answer is in.  Which changelog partition a key goes to
# is learnt first on a scratch cluster (the producers' murmur2_random).
#
# Then a rollback inside a held answer: Redis, snapshotted while the
# customer's record was still on its owed list, comes back from that
# snapshot while a second event's offsets record waits for its customer's
# answer.  The claim's repair appends the customer as the snapshot holds it;
# the held offsets record, past the second event, must not follow it (the
# changelog would then say the second event was applied to a state without
# it).  Read in the order the records were produced, every offsets record
# past the second event comes after the customer's state with it.
. "$MCD_SRCDIR/tests/lib.sh"

CLOG=partnercenter.multichannel.changelog.v1
DELAY=15000

# ---- which partition each key goes to ------------------------------------------
PARTS=4         # with 2, each __offsets__:N went to partition N, as its customers did
start_kafka "$PARTS"
ok $? "a scratch mock cluster at $BOOTSTRAP, to learn where keys go"
for k in c-0 c-1 c-2 c-3 c-4 c-5 c-6 c-7 c-8 c-9 __offsets__:0 __offsets__:1 __offsets__:2 __offsets__:3; do
        echo "$k|x"
done |
        kcat -P -b "$BOOTSTRAP" -t "$CLOG" -K '|' -X topic.partitioner=murmur2_random 2> "$TMP/kcat.err"
kcat -C -b "$BOOTSTRAP" -t "$CLOG" -e -q -f '%k %p\n' > "$TMP/parts" 2>> "$TMP/kcat.err"
kill_ours TERM "$KAFKA_PID"
wait "$KAFKA_PID" 2> /dev/null
part_of() { sed -n "s/^$1 \([0-9]*\)$/\1/p" "$TMP/parts"; }
CUST=""
for i in 0 1 2 3 4 5 6 7 8 9; do
        q=$(part_of "c-$i")
        o=$(part_of "__offsets__:$q")
        if [ -n "$q" ] && [ -n "$o" ] && [ "$q" != "$o" ]; then
                CUST=c-$i Q=$q
                break
        fi
done
[ -n "$CUST" ]
ok $? "$CUST goes to partition ${Q:-?}; the offsets record of input partition ${Q:-?} to the other"

# ---- the held answer -----------------------------------------------------------
start_redis; ok $? "redis-server started on port $REDIS_PORT"
start_kafka "$PARTS" --produce-delay "$CLOG:$Q:$DELAY"
ok $? "mock cluster at $BOOTSTRAP, $CLOG [$Q] on a broker of its own that holds a Produce answer $((DELAY / 1000)) s"
# The session timeout past the hold: a partition idle that long since its
# last commit, a record still due, is taken for stalled and claimed again
# (publish_stalled), whose repair would append the offsets record instead.
write_config "$TMP/mcd.conf" "kafka.session.timeout.ms = 30000"
start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 daemon_ready "$TMP/daemon.log"
ok $? "daemon ready"

ev r1 1924992000000 "$CUST" RelationshipRequested "$EV_REL" > "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
clog_keys() { kcat -C -b "$BOOTSTRAP" -t "$CLOG" -e -q -f '%k\n' 2> /dev/null; }
has_key() { clog_keys | grep -qx "$1"; }
t0=$(now_ms)
publish_events "$TMP/in.jsonl"
ok $? "published $CUST's event"
wait_until 30 has_key "$CUST"
ok $? "$CUST's changelog record is appended (its batch's outcome delivered)"
clog_keys > "$TMP/keys1"
t1=$(now_ms)
grep -q "answers its next Produce $DELAY ms late" "$TMP/mock.log" && [ $((t1 - t0)) -lt "$DELAY" ]
ok $? "inside the held answer: read $((t1 - t0)) ms after the publish, its delivery report not in yet"
! grep -qx "__offsets__:$Q" "$TMP/keys1"
ok $? "the partition's offsets record is not in the changelog meanwhile ($(tr '\n' ' ' < "$TMP/keys1"))"
wait_until 30 has_key "__offsets__:$Q"
ok $? "it follows once the answer is in"
! grep -q "claimed again" "$TMP/daemon.log"
ok $? "appended by the partition's owner as it was, not by a claim's repair"
t2=$(now_ms)
[ $((t2 - t0)) -ge "$DELAY" ]
ok $? "after it: $((t2 - t0)) ms after the publish (the answer held $DELAY ms)"
redis-cli -p "$REDIS_PORT" exists "mcd:off:$Q" | grep -qx 1
ok $? "the event was read from input partition $Q, whose offsets record that is"

wait_until 30 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "daemon published $n_want outcomes"

# ---- a rollback while the answer is held ---------------------------------------
owed() { redis-cli -p "$REDIS_PORT" lrange "mcd:clog_owed:$Q" 0 -1; }
owed | grep -qx "$CUST"
ok $? "$CUST is on partition $Q's owed list (no commit has trimmed it yet): $(owed | tr '\n' ' ')"
snapshot_redis
ok $? "Redis snapshotted"
ev r2 1924992060000 "$CUST" RelationshipAccepted "$EV_REL" > "$TMP/in2.jsonl"
cat "$TMP/in.jsonl" "$TMP/in2.jsonl" > "$TMP/all.jsonl"
expect_replay "$TMP/all.jsonl"
kill -HUP "$KAFKA_PID"          # the next Produce answer of $CLOG [$Q] held again
cust_records() { clog_keys | grep -cx "$CUST"; }
offsets_records() { clog_keys | grep -cx "__offsets__:$Q"; }
n_off=$(offsets_records)
t0=$(now_ms)
publish_events "$TMP/in2.jsonl"
ok $? "published $CUST's second event"
two_records() { [ "$(cust_records)" -ge 2 ]; }
wait_until 30 two_records
ok $? "its record is appended, its answer held"
roll_back_redis
ok $? "Redis rolled back to the snapshot"
t1=$(now_ms)
[ "$(offsets_records)" -eq "$n_off" ] && [ $((t1 - t0)) -lt "$DELAY" ]
ok $? "inside the held answer ($((t1 - t0)) ms): no offsets record past the second event yet"
wait_until 60 grep -q "re-processing from offsets" "$TMP/daemon.log"
ok $? "the daemon found the rollback and re-processes"
wait_until 90 compare_states "$TMP/mcd.conf" "$TMP/want_states"
ok $? "Redis holds replay's states again (the second event applied again)"
wait_until 60 redo_done
ok $? "its re-processing is done"
# Produce time, customer records first on a tie (a repair flushes them
# before its offsets record); a customer record as its size, which differs
# between the two states (checked).
{
        kcat -C -b "$BOOTSTRAP" -t "$CLOG" -p "$Q" -e -q -f '%T 0 %k %S\n' 2>> "$TMP/kcat.err" |
                awk -v k="$CUST" '$3 == k'
        kcat -C -b "$BOOTSTRAP" -t "$CLOG" -e -q -f '%T 1 %k %s\n' 2>> "$TMP/kcat.err" |
                awk -v k="__offsets__:$Q" '$3 == k'
} | sort -s -n -k1,1 -k2,2 > "$TMP/timeline"
sizes=$(awk '$2 == 0 { print $4 }' "$TMP/timeline" | tr '\n' ' ')
s1=$(awk '$2 == 0 { print $4; exit }' "$TMP/timeline")
s2=$(awk '$2 == 0 { s = $4 } END { print s }' "$TMP/timeline")
[ -n "$s1" ] && [ "$s1" != "$s2" ] &&
        echo "$sizes" | awk -v a="$s1" -v b="$s2" '{ for (i = 1; i <= NF; i++) if ($i == (k % 2 ? a : b)) k++ }
                                                  END { exit k < 3 }'
ok $? "$CUST's records: $sizes bytes (the repair appended the snapshot's state between the newer ones)"
# an offsets record past the second event (rel >= 2) after the older state is the hole
awk -v s2="$s2" '$2 == 0 { last = $4; next }
        { if (match($0, /"rel":[0-9-]+/) && substr($0, RSTART + 6, RLENGTH - 6) + 0 >= 2 && last != s2) {
                print "offsets record past the second event after state of " last " bytes: " $0; bad = 1 } }
        END { exit bad }' "$TMP/timeline" > "$TMP/hole"
ok $? "no offsets record past the second event follows the older state: $(cat "$TMP/hole")"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
no_sanitizer_report "$TMP/daemon.log"
tap_done

#!/bin/sh
# daemon_redis_loss.sh -- Redis restarted empty (its disk lost) in the middle
# of a run: the daemon notices, rebuilds the customers' state from the
# changelog topic, and carries on.  At the end the outcome topic holds
# exactly replay's outcomes, each once, and Redis replay's final states.
. "$MCD_SRCDIR/tests/lib.sh"

EVENTS=${MCD_LOSS_EVENTS:-5000}
# The second half is published while the daemon runs: merge_wait must cover
# the lag between the two topics' fetches on a loaded machine.
start_services 4 "batch.max_events = 40" "batch.wait = 10ms" "merge_wait = 2s"

# Events of 2031 (future_stream in lib.sh), published in two halves: Redis is
# lost between them, so the daemon meets the loss with input still to come
# however fast it went through the first half.
future_stream 11 "$EVENTS" 300 "$TMP/in.jsonl"
expect_replay "$TMP/in.jsonl"
half=$(($(wc -l < "$TMP/in.jsonl") / 2))
head -n "$half" "$TMP/in.jsonl" > "$TMP/part1"
tail -n +"$((half + 1))" "$TMP/in.jsonl" > "$TMP/part2"
publish_events "$TMP/part1"
ok $? "published the first half of $EVENTS events ($n_want outcomes expected in all)"

start_daemon "$TMP/mcd.conf" "$TMP/daemon.log"
wait_until 60 outcomes_at_least "$TMP/mcd.conf" 300
ok $? "daemon is processing"

lose_redis
before=$(count_outcomes "$TMP/mcd.conf")
start_redis "$REDIS_PORT"
ok $? "Redis restarted empty on the same port after $before outcomes"
publish_events "$TMP/part2"
ok $? "published the second half"

wait_until 300 outcomes_at_least "$TMP/mcd.conf" "$n_want"
ok $? "the daemon carries on to the end"
sleep 3
grep -q "restored .* from the changelog" "$TMP/daemon.log"
ok $? "the daemon rebuilt its state from the changelog"
wait_until 30 grep -q "forgetting the [0-9]* output ids looked up" "$TMP/daemon.log"
ok $? "once re-processed, it forgot the output ids it looked up ($(grep -o "forgetting the [0-9]* output ids" "$TMP/daemon.log" | tail -1))"
assert_exactly_once "$TMP/mcd.conf" ""
stop_daemon_ok
grep -E "error|warning" "$TMP/daemon.log" | grep -v "kafka " | sort | uniq -c | sort -rn | head -8 | diag

# A restore cut short (the daemon killed while rebuilding, say): Redis keeps
# the generations and the meta key, not the offsets nor the customers.  The
# next start must rebuild again, and publish nothing twice.
redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:*' | grep -v -e '^mcd:gen:' -e '^mcd:meta$' |
        xargs -r redis-cli -p "$REDIS_PORT" del > /dev/null
[ "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:off:*' | wc -l)" -eq 0 ] &&
        [ "$(redis-cli -p "$REDIS_PORT" --scan --pattern 'mcd:gen:*' | wc -l)" -eq 4 ]
ok $? "Redis left with the generations of the 4 partitions, without offsets or customers"
start_daemon "$TMP/mcd.conf" "$TMP/daemon2.log"
wait_until 60 grep -q "ready: " "$TMP/daemon2.log"
ok $? "the daemon starts again"
sleep 3
[ "$(grep -c "restored .* from the changelog" "$TMP/daemon2.log")" -eq 4 ]
ok $? "each partition was rebuilt from the changelog ($(grep -c "restored .* from the changelog" "$TMP/daemon2.log") of 4)"
assert_exactly_once "$TMP/mcd.conf" "after the second rebuild: "

# Redis emptied under the idle daemon, its connection kept (FLUSHALL, as a
# failover to an empty replica would): the daemon notices without input (its
# due scan finds the state gone) and rebuilds, timers included.
redis-cli -p "$REDIS_PORT" flushall > /dev/null
ok $? "Redis emptied (FLUSHALL) under the idle daemon"
wait_until 60 compare_states "$TMP/mcd.conf" "$TMP/want_states"
ok $? "the idle daemon rebuilt Redis: replay's final state for all $(wc -l < "$TMP/want_states") customers"
diff "$TMP/want_states" "$TMP/redis_states" | head -4 | cut -c1-250 | diag
stop_daemon_ok

# Between a batch's commit and its publish (the daemon stopped there by
# fault injection), on one partition, with scenario 05 moved to 2031:
#   lost: Redis restarted empty.  The batch is derived again from the
#     changelog's older state, and the rules' clock must go back with it:
#     the parked switch's grace ends at 09:12, before the acceptance at 09:30,
#     so it is rejected; with the clock left at the batch's end (09:31) it
#     would be parked until 09:41 and switched instead, under the same id.
#   kept: Redis down a while, its data kept.  The daemon restarts the
#     partition, dropping the unsent frames; their changelog records are
#     held until the outbox is reconciled, then appended: emptied
#     afterwards, Redis is rebuilt from them, and nothing is published twice.
stopped_case() {  # stopped_case lost|kept
        stop_services
        start_services -p "$1: " 1 "batch.max_events = 100" "batch.wait = 2s" "merge_wait = 20ms"
        sed 's/"2026-/"2031-/g' "$MCD_SRCDIR/tests/scenarios/05-parked-event-expires-without-acceptance.jsonl" > "$TMP/in.jsonl"
        expect_replay "$TMP/in.jsonl"
        publish_events "$TMP/in.jsonl"
        ok $? "$1: published scenario 05, moved to 2031 ($n_want outcomes expected)"
        MCD_FAULT_STOP_BEFORE_PUBLISH=1 $MCD run -c "$TMP/mcd.conf" 2> "$TMP/$1.log" &
        DAEMON_PID=$!
        PIDS="$PIDS $DAEMON_PID"
        wait_until 60 stopped "$DAEMON_PID"
        ok $? "$1: the daemon committed its first batch and stopped before publishing it"
        offs="$(redis-cli -p "$REDIS_PORT" hget mcd:off:0 rel)/$(redis-cli -p "$REDIS_PORT" hget mcd:off:0 sub)"
        [ "$offs" = 2/3 ]
        ok $? "$1: the batch held all 5 events (next offsets $offs, want 2/3)"
        if [ "$1" = lost ]; then
                lose_redis
                start_redis "$REDIS_PORT"
                ok $? "$1: Redis restarted empty"
                kill -CONT "$DAEMON_PID"
        else
                redis-cli -p "$REDIS_PORT" shutdown > /dev/null 2>&1
                wait "$REDIS_PID" 2>/dev/null
                kill -CONT "$DAEMON_PID"
                wait_until 30 grep -q "Redis at .* unreachable" "$TMP/$1.log"
                ok $? "$1: the daemon, continued, finds Redis down"
                start_redis "$REDIS_PORT"
        fi
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "$1: the daemon publishes the batch's outcomes"
        sleep 2
        assert_exactly_once "$TMP/mcd.conf" "$1: "
        if [ "$1" = kept ]; then
                redis-cli -p "$REDIS_PORT" flushall > /dev/null
                wait_until 30 grep -q "restored 1 customers and offsets 2/3" "$TMP/$1.log"
                ok $? "$1: emptied afterwards, Redis is rebuilt from the batch's changelog records"
                sleep 2
                assert_exactly_once "$TMP/mcd.conf" "$1, rebuilt: "
        fi
        stop_daemon_ok "$1: "
}
stopped_case lost
stopped_case kept

# A restart while a rebuilt partition is being re-processed.  The outputs
# the re-processed events had before Redis was lost are looked up on the
# output topics by the rebuild, in memory; Redis must keep enough to look
# them up again.  On one partition, in batches of 20:
#   1. a first daemon delivers batch 3's outputs and is stopped before their
#      changelog records are appended, then killed; Redis is lost;
#   2. a second daemon rebuilds from the changelog (the state of batch 2, or
#      1), commits one batch re-processing what follows, and is stopped
#      before publishing it, then killed.  mid: a batch of 20, short of the
#      input's end; end: a batch of 1000, to the end;
#   3. a third finds the re-processing record and looks the published
#      outputs up again: nothing is published twice.  Once its outbox is
#      delivered past the end of the re-processing, it drops the record.
# twice: daemon 2 re-processes in batches of 5, appends its batches 1 and 2
# to the changelog and is stopped before batch 3's append; Redis is lost
# again.  Daemon 3 rebuilds from daemon 2's records, whose marks must still
# reach back to the outputs of before the first loss.
run_stopped() {  # run_stopped FAULT CONFIG LOG: a daemon with FAULT set, killed once it stopped there
        env "$1" $MCD run -c "$2" 2> "$3" &
        DAEMON_PID=$!
        PIDS="$PIDS $DAEMON_PID"
        wait_until 60 stopped "$DAEMON_PID"
        _st=$?
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null
        return $_st
}
reprocess_case() {  # reprocess_case mid|end|twice
        stop_services
        start_services -p "re-process $1: " 1 "batch.max_events = 20" "batch.wait = 2s" "merge_wait = 20ms"
        fault_batch=3 batch2=20 fault2=MCD_FAULT_STOP_BEFORE_PUBLISH=1
        case $1 in
        end) batch2=1000 ;;
        twice) batch2=5 fault2=MCD_FAULT_STOP_BEFORE_CHANGELOG=3 ;;
        esac
        write_config "$TMP/mcd2.conf" "batch.max_events = $batch2" "batch.wait = 2s" "merge_wait = 20ms"
        future_stream 12 300 30 "$TMP/in.jsonl"
        expect_replay "$TMP/in.jsonl"
        publish_events "$TMP/in.jsonl"
        ok $? "re-process $1: published $(wc -l < "$TMP/in.jsonl") events ($n_want outcomes expected)"
        run_stopped MCD_FAULT_STOP_BEFORE_CHANGELOG=$fault_batch "$TMP/mcd.conf" "$TMP/re1.log"
        ok $? "re-process $1: daemon 1 delivered batch $fault_batch and stopped before its changelog append"
        published=$(count_outcomes "$TMP/mcd.conf")
        lose_redis
        start_redis "$REDIS_PORT"
        [ "$published" -ge $((fault_batch * 10)) ]
        ok $? "re-process $1: $published outcomes published; Redis restarted empty"
        run_stopped "$fault2" "$TMP/mcd2.conf" "$TMP/re2.log"
        ok $? "re-process $1: daemon 2 rebuilt, re-processed, and stopped ($fault2)"
        grep -q "restored .* from the changelog" "$TMP/re2.log"
        ok $? "re-process $1: daemon 2 had rebuilt the partition from the changelog"
        if [ "$1" = twice ]; then
                lose_redis
                start_redis "$REDIS_PORT"
                ok $? "re-process $1: Redis restarted empty again"
        fi
        start_daemon "$TMP/mcd.conf" "$TMP/re3.log"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "re-process $1: daemon 3 publishes the rest"
        grep -q -e "re-processing after a rebuild or a rollback not known done" -e "restored .* from the changelog" "$TMP/re3.log"
        ok $? "re-process $1: daemon 3 looked the published outputs up again"
        wait_until 30 redo_done
        ok $? "re-process $1: daemon 3 dropped the re-processing record once past it"
        sleep 2
        assert_exactly_once "$TMP/mcd.conf" "re-process $1: "
        kill -TERM "$DAEMON_PID"
        wait "$DAEMON_PID"
        ok $? "re-process $1: daemon 3 exits 0 on SIGTERM"
}
# first batch: daemon 1 delivers its first batch and is stopped before that
# batch's changelog append; Redis is lost.  The changelog holds nothing of
# the partition, so it is re-processed from its beginning: what says where
# its outputs begin is the consumer group's copy, sent before the first
# batch (send_origin), and daemon 2 looks the outputs up from there.
# Daemon 1 copies offsets to the group once an hour at most, so the only
# copy it sends is send_origin's own, which must carry the origin marks
# (it once carried only the generation, and a flush an interval later added
# the marks: Redis lost before that flush, batch 1 was published twice).
first_batch_case() {
        stop_services
        start_services -p "first batch: " 1 "batch.max_events = 20" "batch.wait = 2s" "merge_wait = 20ms"
        write_config "$TMP/first1.conf" "batch.max_events = 20" "batch.wait = 2s" "merge_wait = 20ms" \
                "group_offsets.interval = 1h"
        future_stream 13 300 30 "$TMP/in.jsonl"
        expect_replay "$TMP/in.jsonl"
        publish_events "$TMP/in.jsonl"
        ok $? "first batch: published $(wc -l < "$TMP/in.jsonl") events ($n_want outcomes expected)"
        run_stopped MCD_FAULT_STOP_BEFORE_CHANGELOG=1 "$TMP/first1.conf" "$TMP/first1.log"
        ok $? "first batch: daemon 1 delivered batch 1 and stopped before its changelog append"
        published=$(count_outcomes "$TMP/mcd.conf")
        clog=$("$MCD_BUILDDIR/tests/produce_raw" -b "$BOOTSTRAP" -t partnercenter.multichannel.changelog.v1 -d \
                2>/dev/null | wc -l)
        lose_redis
        start_redis "$REDIS_PORT"
        [ "$published" -ge 10 ] && [ "$clog" -eq 0 ]
        ok $? "first batch: $published outcomes published, $clog changelog records; Redis restarted empty"
        start_daemon "$TMP/mcd.conf" "$TMP/first2.log"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$n_want"
        ok $? "first batch: daemon 2 publishes the rest"
        grep -q "the consumer group says where its outputs begin" "$TMP/first2.log"
        ok $? "first batch: daemon 2 looked the outputs up from where the group says they begin"
        wait_until 30 redo_done
        ok $? "first batch: daemon 2 dropped the re-processing record once past it"
        sleep 2
        assert_exactly_once "$TMP/mcd.conf" "first batch: "
        kill -TERM "$DAEMON_PID"
        wait "$DAEMON_PID"
        ok $? "first batch: daemon 2 exits 0 on SIGTERM"
}
for c in ${MCD_REPROCESS_CASES-mid end twice}; do
        reprocess_case "$c"
done
first_batch_case
tap_done

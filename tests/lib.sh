# lib.sh -- TAP helpers for the shell tests (sourced), then the services the
# integration tests start and the checks they share.  A script that wants
# only the TAP helpers (ok, diag, tap_done; tests/fuzz/run.sh) sets
# MCD_TAP_ONLY=1 before sourcing it: nothing else is defined or required.
tap_n=0
tap_failed=0
ok() {  # ok STATUS DESCRIPTION
        tap_n=$((tap_n + 1))
        if [ "$1" -eq 0 ]; then
                echo "ok $tap_n - $2"
        else
                echo "not ok $tap_n - $2"
                tap_failed=$((tap_failed + 1))
        fi
}
diag() { sed 's/^/# /'; }
tap_done() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
}
[ -n "${MCD_TAP_ONLY:-}" ] && return 0
: "${MCD_BIN:?MCD_BIN must name the multichanneld binary}"
: "${MCD_BUILDDIR:?}"
: "${MCD_SRCDIR:?}"
MCD="${MCD_WRAPPER:+$MCD_WRAPPER }$MCD_BIN"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcd-test.XXXXXX")
export MCD_TEST_TMP="$TMP"      # every process the test starts carries it: kill_ours


# ---- services for the integration tests -------------------------------------
# Every helper records what it started so that the EXIT trap stops it.
PIDS=""

# proc_stat PID FIELD: field FIELD of /proc/PID/stat (3: the state, 4: the
# parent's PID); empty once PID is gone.  The fields are counted after the
# command's closing ") ", the last in the line: the command may hold any bytes.
proc_stat() {
        sed -n 's/^.*) //p' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f$(($2 - 2))
}

# kill_ours SIGNAL PID...: signals each PID that still names one of this
# test's processes (read from /proc: procps may not be installed): a child
# of this shell, or one whose environment holds
# MCD_TEST_TMP=$TMP (redis-server writes its title over its environment, so
# the first test is needed too).  A PID recorded earlier (a process killed
# and started again, one that exited) may name another test's process by
# now: the kernel reuses PIDs, and a CI run goes round pid_max (32768) many
# times while the tests run two at a time.
kill_ours() {
        _sig=$1
        shift
        for _p in "$@"; do
                if [ "$(proc_stat "$_p" 4)" = "$$" ] ||
                   tr '\0' '\n' 2>/dev/null < "/proc/$_p/environ" | grep -qxF "MCD_TEST_TMP=$TMP"; then
                        kill "-$_sig" "$_p" 2>/dev/null
                elif kill -0 "$_p" 2>/dev/null; then    # evidence of the hazard, for the log
                        echo "# kill_ours: pid $_p is no longer this test's, left alone:" \
                                "$(tr '\0' ' ' 2>/dev/null < "/proc/$_p/cmdline" | cut -c1-100)"
                fi
        done
        return 0
}
cleanup() {
        # On failure, the end of every log the test kept, for the CI output.
        if [ "${tap_failed:-0}" -gt 0 ]; then
                for p in $PIDS; do      # one that died on its own: how (128+N: signal N)
                        kill -0 "$p" 2>/dev/null && continue
                        wait "$p" 2>/dev/null
                        _st=$?
                        [ $_st -ne 127 ] && echo "# pid $p had exited by itself, status $_st"
                done
                for f in "$TMP"/*.log; do
                        [ -f "$f" ] || continue
                        echo "# --- last lines of $(basename "$f"):"
                        grep -v "kafka .*debug" "$f" | tail -25 | sed 's/^/# /'
                done
        fi
        kill_ours KILL $PIDS
        wait 2>/dev/null
        [ -n "${MCD_KEEP_TMP:-}" ] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {  # prints a free TCP port on 127.0.0.1
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
                echo $((20000 + $$ % 20000))
}

wait_until() {  # wait_until SECONDS COMMAND...: polls every 0.2 s
        _deadline=$(( $(date +%s) + $1 )); shift
        while ! "$@" >/dev/null 2>&1; do
                [ "$(date +%s)" -ge "$_deadline" ] && return 1
                sleep 0.2
        done
}

start_redis() {  # start_redis [PORT]: sets REDIS_PORT; AOF on, as production should run
        REDIS_PORT=${1:-$(free_port)}
        mkdir -p "$TMP/redis"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
                --dir "$TMP/redis" --logfile "$TMP/redis/log" &
        REDIS_PID=$!
        PIDS="$PIDS $REDIS_PID"
        wait_until 20 redis-cli -p "$REDIS_PORT" ping
}

start_replica() {  # start_replica MASTER_PORT: a replica of 127.0.0.1:MASTER_PORT (AOF on); sets REPLICA_PORT
        REPLICA_PORT=$(free_port)
        mkdir -p "$TMP/replica"
        redis-server --port "$REPLICA_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
                --dir "$TMP/replica" --logfile "$TMP/replica/log" --replicaof 127.0.0.1 "$1" &
        REPLICA_PID=$!
        PIDS="$PIDS $REPLICA_PID"
        wait_until 20 redis-cli -p "$REPLICA_PORT" ping
}

# start_sentinels MASTER_PORT [N]: N (3) redis-sentinel processes watching
# 127.0.0.1:MASTER_PORT as "mymaster" (quorum 2, down after 1 s), each with a
# configuration file of its own that it rewrites; logs in $TMP/sentinel.I.log.
# Sets SENTINEL_PORTS (space-separated) and SENTINELS (redis.sentinels' form).
# TILT mode (a Sentinel whose timer ticks more than 2 s apart stops acting
# for 30 s and answers "not down" to the others) waits for a 10 s stall and
# lasts 3 s here (Redis's own tests shorten only the period): on two loaded
# cores the fsyncs of the configuration rewrites during a failover can stall
# a Sentinel's loop that long, and two in TILT keep the third from a quorum
# past a test's wait.
start_sentinels() {
        SENTINEL_PORTS=""
        SENTINELS=""
        for _i in $(seq 1 "${2:-3}"); do
                _p=$(free_port)
                mkdir -p "$TMP/sentinel.$_i"
                printf '%s\n' "port $_p" "bind 127.0.0.1" "dir $TMP/sentinel.$_i" "logfile $TMP/sentinel.$_i.log" \
                        "sentinel monitor mymaster 127.0.0.1 $1 2" "sentinel down-after-milliseconds mymaster 1000" \
                        "sentinel failover-timeout mymaster 5000" > "$TMP/sentinel.$_i/sentinel.conf"
                redis-sentinel "$TMP/sentinel.$_i/sentinel.conf" &
                PIDS="$PIDS $!"
                SENTINEL_PORTS="$SENTINEL_PORTS $_p"
                SENTINELS="${SENTINELS:+$SENTINELS,}127.0.0.1:$_p"
                wait_until 20 redis-cli -p "$_p" ping || return 1
                redis-cli -p "$_p" sentinel debug tilt-trigger 10000 tilt-period 3000 | grep -q OK || return 1
        done
}

sentinel_names() {  # sentinel_names SENTINEL_PORT: the port it gives for mymaster
        redis-cli -p "$1" sentinel get-master-addr-by-name mymaster | sed -n 2p
}

sentinels_name() {  # sentinels_name PORT: every Sentinel of start_sentinels gives PORT for mymaster
        for _p in $SENTINEL_PORTS; do
                [ "$(sentinel_names "$_p")" = "$1" ] || return 1
        done
}

is_master() { redis-cli -p "$1" role | head -1 | grep -q '^master'; }   # is_master PORT: the Redis on PORT says it is a master
promoted() { sentinels_name "$1" && is_master "$1"; }                   # promoted PORT: every Sentinel names PORT, and it is a master

sentinel_events() {  # sentinel_events: every Sentinel's events (its log's "#" lines), the last 30 of each, as TAP comments
        for _f in "$TMP"/sentinel.*.log; do
                echo "$_f:"
                grep ' # ' "$_f" | tail -30
        done | diag
}

lose_redis() {  # lose_redis: redis-server killed and its data dir deleted (a lost disk)
        kill_ours KILL "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
        rm -rf "$TMP/redis"
}

snapshot_redis() {  # snapshot_redis: SAVE, and the snapshot kept aside for roll_back_redis
        redis-cli -p "$REDIS_PORT" save > /dev/null && cp "$TMP/redis/dump.rdb" "$TMP/snapshot.rdb"
}

roll_back_redis() {  # roll_back_redis: redis-server killed, restarted on its port from the snapshot (AOF on again)
        kill_ours KILL "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
        rm -rf "$TMP/redis"
        mkdir -p "$TMP/redis"
        cp "$TMP/snapshot.rdb" "$TMP/redis/dump.rdb"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
                --dir "$TMP/redis" --logfile "$TMP/redis/log" &
        REDIS_PID=$!
        PIDS="$PIDS $REDIS_PID"
        wait_until 20 redis-cli -p "$REDIS_PORT" ping && redis-cli -p "$REDIS_PORT" config set appendonly yes > /dev/null
}

off_sum() {  # off_sum PORT FIELD...: those fields of every partition's offsets record (mcd:off:*), summed
        _port=$1; shift
        redis-cli -p "$_port" --scan --pattern 'mcd:off:*' | while read -r _k; do
                redis-cli -p "$_port" hmget "$_k" "$@"
        done | awk '$1 > 0 { s += $1 } END { print s + 0 }'
}
offsets_sum() { off_sum "${1:-$REDIS_PORT}" rel sub; }   # offsets_sum [PORT]: the stored next offsets, summed
seqs_sum() { off_sum "${1:-$REDIS_PORT}" seq; }          # seqs_sum [PORT]: the commit counters, summed

redo_pending() {  # redo_pending [PORT]: a re-processing record (mcd:redo:*) is in Redis (on PORT)
        redis-cli -p "${1:-$REDIS_PORT}" --scan --pattern 'mcd:redo:*' | grep -q .
}
redo_done() { ! redo_pending "$@"; }   # redo_done [PORT]: none is

in_snapshot() {  # in_snapshot FUNC: FUNC PORT, on the snapshot (snapshot_redis) read by a redis-server of its own
        mkdir -p "$TMP/inspect" && cp "$TMP/snapshot.rdb" "$TMP/inspect/dump.rdb"
        _port=$(free_port)
        redis-server --port "$_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP/inspect" \
                --logfile "$TMP/inspect/log" &
        _pid=$!
        wait_until 20 redis-cli -p "$_port" ping > /dev/null
        "$1" "$_port"
        kill "$_pid"; wait "$_pid" 2>/dev/null; rm -rf "$TMP/inspect"
}

snapshot_sum() {  # snapshot_sum: offsets_sum of the snapshot
        in_snapshot offsets_sum
}

stop_services() {  # stop_services: Redis lost as above, the mock cluster killed
        lose_redis
        kill_ours KILL "$KAFKA_PID"
        wait "$KAFKA_PID" 2>/dev/null
}

stopped() {  # stopped PID: the process is in state T (stopped)
        [ "$(proc_stat "$1" 3)" = T ]
}

start_kafka() {  # start_kafka PARTITIONS [MOCK-CLUSTER OPTIONS]: a mock cluster in its own process; sets BOOTSTRAP
        rm -f "$TMP/bootstrap"
        _parts=${1:-4}
        shift 2>/dev/null || true
        "$MCD_BIN" mock-cluster --partitions "$_parts" "$@" > "$TMP/bootstrap" 2> "$TMP/mock.log" &
        KAFKA_PID=$!
        PIDS="$PIDS $KAFKA_PID"
        wait_until 30 test -s "$TMP/bootstrap" || return 1
        BOOTSTRAP=$(head -1 "$TMP/bootstrap")
}

write_config() {  # write_config FILE [KEY = VALUE...]: the test defaults, overridden by the extras
        _f=$1; shift
        {
                echo "kafka.bootstrap.servers = $BOOTSTRAP"
                echo "redis.port = $REDIS_PORT"
                echo "merge_wait = 200ms"
                echo "metrics.listen ="
                [ -n "${MCD_TEST_LOG_LEVEL:-}" ] && echo "log.level = $MCD_TEST_LOG_LEVEL"
                for l in "$@"; do echo "$l"; done
        } | awk -F ' *= *' '!($1 in last) { order[n++] = $1 } { last[$1] = $0 }
                            END { for (i = 0; i < n; i++) print last[order[i]] }' > "$_f"
}

# start_services [-p PREFIX] PARTITIONS [KEY = VALUE...]: the prelude of the
# daemon tests: a redis-server (start_redis, AOF on) and a mock cluster of
# PARTITIONS partitions per topic (start_kafka), each checked by a TAP line
# whose description starts with PREFIX, then $TMP/mcd.conf written by
# write_config with the extras.  A service that did not start is a failed
# TAP line; the test goes on, as with the helpers called one by one.
start_services() {
        _prefix=""
        if [ "$1" = -p ]; then _prefix=$2; shift 2; fi
        _parts=$1; shift
        start_redis
        ok $? "${_prefix}redis-server started on port $REDIS_PORT (AOF on)"
        start_kafka "$_parts"
        ok $? "${_prefix}mock cluster with $_parts partitions per topic at $BOOTSTRAP"
        write_config "$TMP/mcd.conf" "$@"
}

start_daemon() {  # start_daemon CONFIG LOG: sets DAEMON_PID
        $MCD run -c "$1" > "$2.out" 2> "$2" &
        DAEMON_PID=$!
        PIDS="$PIDS $DAEMON_PID"
}

stop_daemon_ok() {  # stop_daemon_ok [LABEL]: SIGTERM to $DAEMON_PID; one TAP line, its exit status 0
        kill_ours TERM "$DAEMON_PID"    # one that died already may have left its PID to another test
        # One a fault stopped late (a check failed already) would hang the
        # wait: continued, but only if stopped.  Two ASan runs that sent
        # SIGCONT always hung after "stopping", each daemon spinning and
        # traced by LeakSanitizer's tracer, which waited for a stop: a
        # SIGCONT cancels a pending SIGSTOP, such as the one of its attach.
        stopped "$DAEMON_PID" && kill_ours CONT "$DAEMON_PID"
        wait "$DAEMON_PID"
        ok $? "${1:-}daemon exits 0 on SIGTERM"
}

outcome_topic() {  # outcome_topic [CONFIG]: its topic.outcomes ($TMP/mcd.conf's), or the key's default when CONFIG is not written yet
        _c=${1:-$TMP/mcd.conf}
        [ -f "$_c" ] || _c=/dev/null
        _t=$("$MCD_BIN" check-config -c "$_c" --print) || return 1
        _t=$(printf '%s\n' "$_t" | sed -n 's/^topic\.outcomes = //p')
        [ -n "$_t" ] && echo "$_t"
}

count_outcomes() {  # count_outcomes CONFIG: outcomes on the topic now
        "$MCD_BIN" tail -c "$1" --exit-at-end 2>/dev/null | wc -l
}

outcomes_at_least() {  # outcomes_at_least CONFIG N
        [ "$(count_outcomes "$1")" -ge "$2" ]
}

strip_messages() {  # outcome lines without "message", sorted
        sed 's/"message":"\([^"\\]\|\\.\)*",//' | sort
}

sort_by_time() {  # JSON lines in occurred_at order, a relationship first on a tie (stable)
        sed -e 's/.*"occurred_at": *"\([^"]*\)".*/\1\t&/' \
            -e 's/^\([^\t]*\)\t\(.*"type": *"Relationship\)/\1\t0\t\2/' \
            -e 's/^\([^\t]*\)\t\([^0]\)/\1\t1\t\2/' |
                sort -s -t "$(printf '\t')" -k1,2 | cut -f3-
}

# gen_events ARGS...: tests/gen_events, which only `make check` builds; a
# test run by hand without it would pass on empty streams, so it stops the
# test here (gen_events_built: also before a pipeline, where exit would only
# leave the pipeline's subshell).
gen_events_built() {
        [ -x "$MCD_BUILDDIR/tests/gen_events" ] && return 0
        echo "Bail out! $MCD_BUILDDIR/tests/gen_events is missing: build it with 'make check TESTS='"
        exit 99
}
gen_events() {
        gen_events_built
        "$MCD_BUILDDIR/tests/gen_events" "$@"
}

# future_stream SEED N CUSTOMERS FILE: gen_events' events of January 2031
# (no timer falls due by the wall clock during a test: an idle daemon fires
# due timers by the wall clock, replay only in stream time), in timestamp
# order, each customer's stream ended by a "tick" on 2031-02-01 so that what
# falls due in stream time fires in replay and in the daemon alike.
future_stream() {
        gen_events_built
        gen_events -s "$1" -n "$2" -c "$3" -T 1924992000000 | sort_by_time > "$4"
        sed 's/.*"customer_id":"\([^"]*\)".*/\1/' "$4" | sort -u |
                sed 's/.*/{"event_id":"tick-&","occurred_at":"2031-02-01T00:00:00.000Z","customer_id":"&","cloud":"COMMERCIAL","type":"SubscriptionTermEnded","subscription_id":"tick"}/' \
                >> "$4"
}

# split_thirds FILE: FILE's lines in three parts, $TMP/part1 to part3 (the
# last takes the remainder); sets n (its lines) and third.
split_thirds() {
        n=$(wc -l < "$1")
        third=$((n / 3))
        head -n "$third" "$1" > "$TMP/part1"
        sed -n "$((third + 1)),$((2 * third))p" "$1" > "$TMP/part2"
        tail -n +"$((2 * third + 1))" "$1" > "$TMP/part3"
}

current_stream() {  # current_stream SEED N CUSTOMERS FILE: gen_events' events (up to about now), in timestamp order
        gen_events_built
        gen_events -s "$1" -n "$2" -c "$3" | sort_by_time > "$4"
}

utc_now() {  # the current time in the events' form
        date -u +%Y-%m-%dT%H:%M:%S.000Z
}

now_ms() { date +%s%3N; }
iso() {  # iso MS: the events' form of a wall-clock time in ms
        printf '%s.%03dZ\n' "$(date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000))
}
sleep_until() {  # sleep_until MS: 1 if MS has passed already
        _left=$(($1 - $(now_ms)))
        [ "$_left" -gt 0 ] || return 1
        sleep "$(awk -v ms="$_left" 'BEGIN { printf "%.3f", ms / 1000 }')"
}
EV_REL='"partner_id":"partner-fabrikam"'    # ev's REST for a relationship event
EV_SUB='"offer_name":"Microsoft 365 E3","billing":"LICENSE_BASED","channel":"EA"'   # and part of a subscription's
ev() {  # ev ID MS CUSTOMER TYPE REST: one input event, occurred_at MS
        printf '{"event_id":"%s","occurred_at":"%s","customer_id":"%s","cloud":"COMMERCIAL","type":"%s",%s}\n' \
                "$1" "$(iso "$2")" "$3" "$4" "$5"
}

# blocked_switches N S T: N customers' switches blocked until term_end T
# (their events in the 4 s before S) in $TMP/history.jsonl; an event of a
# customer of its own (c-nudge, at S - 0.5 s) in $TMP/nudge.jsonl; the
# history, the nudge and its repeat (which emits nothing) in $TMP/in.jsonl.
blocked_switches() {
        for _step in 4 3 2 1; do
                _i=0
                while [ "$_i" -lt "$1" ]; do
                        _c="cust-$_i"
                        case $_step in
                        4) ev "$_c-r" $(($2 - 4000)) "$_c" RelationshipRequested "$EV_REL" ;;
                        3) ev "$_c-s" $(($2 - 3000)) "$_c" SubscriptionReported \
                                "\"subscription_id\":\"m365-$_i\",$EV_SUB,\"term_end\":\"$(iso "$3")\"" ;;
                        2) ev "$_c-a" $(($2 - 2000)) "$_c" RelationshipAccepted "$EV_REL" ;;
                        1) ev "$_c-w" $(($2 - 1000)) "$_c" SwitchRequested \
                                "\"subscription_id\":\"m365-$_i\",\"target_partner_id\":\"partner-fabrikam\"" ;;
                        esac
                        _i=$((_i + 1))
                done
        done > "$TMP/history.jsonl"
        ev nudge $(($2 - 500)) c-nudge RelationshipRequested "$EV_REL" > "$TMP/nudge.jsonl"
        cat "$TMP/history.jsonl" "$TMP/nudge.jsonl" "$TMP/nudge.jsonl" > "$TMP/in.jsonl"
}

# apply_then_snapshot N_BEFORE: the daemon applies blocked_switches' history
# and the nudge (N_BEFORE outcomes), then the nudge's repeat, whose commit
# trims the outbox (so that the next owner has nothing to reconcile, whose
# lookup would find the timers' outcomes); Redis is then snapshotted
# (snapshot_redis), the offsets summed in snap_offsets, the commit counters
# in snap_seqs.  2 TAP lines.
apply_then_snapshot() {
        publish_events "$TMP/history.jsonl"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$(($1 - 1))"
        publish_events "$TMP/nudge.jsonl"
        wait_until 60 outcomes_at_least "$TMP/mcd.conf" "$1"
        ok $? "the daemon published the $1 outcomes before the timers"
        publish_events "$TMP/nudge.jsonl"
        wait_until 30 sh -c "[ \$(redis-cli -p $REDIS_PORT llen mcd:outbox:0) -eq 0 ]"
        sleep 2                 # the group's copy is sent at most once a second
        _framed=$(redis-cli -p "$REDIS_PORT" llen mcd:outbox:0)
        snapshot_redis
        ok $([ "$_framed" -eq 0 ]; echo $?) "snapshot taken with $_framed frames in the outbox"
        snap_seqs=$(in_snapshot seqs_sum)
        snap_offsets=$(snapshot_sum)
}

# timers_rolled_back N: the daemon ($DAEMON_PID) fires the timers (N outcomes
# in all) in commits that move no offset, is SIGKILLed, and Redis is rolled
# back to apply_then_snapshot's snapshot.  3 TAP lines.
timers_rolled_back() {
        wait_until 90 outcomes_at_least "$TMP/mcd.conf" "$1"
        ok $? "the daemon fired the timers: $1 outcomes"
        sleep 5                 # the last timer commits' copy to the group, sent at most once a second
        _seqs=$(seqs_sum)
        _offsets=$(offsets_sum)
        ok $([ "$_offsets" -eq "$snap_offsets" ] && [ "$_seqs" -gt "$snap_seqs" ]; echo $?) \
                "the commits after the snapshot moved no offset (summed $snap_offsets, then $_offsets) and counted on ($snap_seqs, then $_seqs)"
        kill_and_roll_back "the daemon"
}

# kill_and_roll_back WHO: the daemon ($DAEMON_PID) SIGKILLed and Redis rolled
# back to apply_then_snapshot's snapshot.  1 TAP line: the commit counters
# are back at the snapshot's.
kill_and_roll_back() {
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null
        roll_back_redis
        _seqs=$(seqs_sum)
        ok $([ "$_seqs" -eq "$snap_seqs" ]; echo $?) "$1 SIGKILLed, Redis rolled back: counters summed $_seqs"
}

# expect_replay [REPLAY OPTIONS...] FILE: what the daemon must give for FILE,
# as replay gives it: the outcomes, messages stripped and sorted, in
# $TMP/want (their count in n_want), the final states in $TMP/want_states.
expect_replay() {
        $MCD replay --state-out "$TMP/want_states" "$@" | strip_messages > "$TMP/want"
        n_want=$(wc -l < "$TMP/want")
}

publish_events() {  # publish_events FILE [CONFIG]: published in the file's order across the two topics (--in-order) with CONFIG ($TMP/mcd.conf); errors to $TMP/publish.err
        "$MCD_BIN" publish --in-order -c "${2:-$TMP/mcd.conf}" "$1" 2>> "$TMP/publish.err"
}

inputs_counted() {  # inputs_counted METRICS: input events the daemon at METRICS (host:port) counted, applied or dead-lettered
        "$MCD_BUILDDIR/tests/http_get" "$1" /metrics 2>/dev/null |
                awk '$1 ~ /^multichanneld_(events|dead_letters)_total/ { s += $NF } END { printf "%.0f\n", s }'
}

inputs_applied() {  # inputs_applied METRICS N: the daemon at METRICS counted N input events
        [ "$(inputs_counted "$1")" = "$2" ]
}

daemon_ready() {  # daemon_ready LOG: the daemon logged that it owns its partitions
        grep -q "ready: " "$1"
}

compare_states() {  # compare_states CONFIG REPLAY_STATES: Redis holds replay's final states
        sed 's/^{"v":[0-9]*,"customer_id":"\([^"]*\)".*/\1/' "$2" > "$TMP/ids"
        xargs "$MCD_BIN" state -c "$1" --compact < "$TMP/ids" > "$TMP/redis_states" 2>&1
        cmp -s "$2" "$TMP/redis_states"
}

# assert_outcomes FILE LABEL: FILE (outcome lines as `tail` prints them)
# holds exactly the outcomes in $TMP/want (replay's, messages stripped,
# sorted), none more often than there.  Two TAP lines; FILE's lines,
# stripped and sorted, are left in $TMP/got.  For a test that reads the
# topic as it is published (the mock keeps only a partition's newest 5 MiB)
# or keeps what it read.  (An event id is repeated in replay's outcomes too
# when a repeat of a forgotten event is rejected EVENT_TOO_OLD: its outcome
# id is the first one's.)
assert_outcomes() {
        strip_messages < "$1" > "$TMP/got"
        _dups=$(sed 's/^{"event_id":"\([^"]*\)".*/\1/' "$TMP/want" "$TMP/got" |
                awk -v n_want="$(wc -l < "$TMP/want")" 'NR <= n_want { w[$1]++; next } { g[$1]++ }
                        END { for (i in g) if (g[i] > w[i]) n++; print n + 0 }')
        ok $([ "$_dups" -eq 0 ]; echo $?) "$2no outcome on the topic twice ($_dups repeated)"
        diff "$TMP/want" "$TMP/got" | head -6 | cut -c1-250 | diag
        cmp -s "$TMP/want" "$TMP/got"
        ok $? "$2outcome topic equals replay's outcomes ($(wc -l < "$TMP/got") of $(wc -l < "$TMP/want"))"
}

# assert_states CONFIG LABEL: Redis holds the states in $TMP/want_states
# (replay's).  One TAP line.
assert_states() {
        compare_states "$1" "$TMP/want_states"
        ok $? "$2Redis holds replay's final state for all $(wc -l < "$TMP/want_states") customers"
        diff "$TMP/want_states" "$TMP/redis_states" | head -4 | cut -c1-250 | diag
}

# assert_exactly_once CONFIG LABEL: the outcome topic, read to its end, holds
# exactly the outcomes in $TMP/want (assert_outcomes), and Redis
# the states in $TMP/want_states (assert_states).  Three TAP lines.
assert_exactly_once() {
        "$MCD_BIN" tail -c "$1" --exit-at-end > "$TMP/got.raw"
        assert_outcomes "$TMP/got.raw" "$2"
        assert_states "$1" "$2"
}

stop_sentinels() {  # stop_sentinels: the processes of start_sentinels killed (found by their ports)
        for _p in $SENTINEL_PORTS; do
                _pid=$(redis-cli -p "$_p" info server 2>/dev/null | sed -n 's/^process_id:\([0-9]*\).*/\1/p')
                [ -n "$_pid" ] && kill_ours KILL "$_pid"
        done
        SENTINEL_PORTS=""
        SENTINELS=""
}

repl_offset() {  # repl_offset PORT: the replication offset the node on PORT has reached
        redis-cli -p "$1" info replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p'
}

group_ahead() {  # group_ahead CONFIG: partition sides where the group's copy is ahead of Redis (lag in $TMP/lag)
        "$MCD_BIN" lag -c "$1" > "$TMP/lag" 2>&1
        awk '$3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ && $4 > $3' "$TMP/lag" | wc -l
}

# no_sanitizer_report FILE...: no AddressSanitizer, LeakSanitizer or UBSan
# report, nor a memcheck error (valgrind -q prints only errors, each headed
# by its kind), in those files.  A daemon stopped by one exits non-zero too
# (valgrind's --error-exitcode), but a report on a path that goes on, or in
# a process SIGKILLed, is found here only.  One TAP line.
MEMCHECK_ERROR="==[0-9]+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|Syscall param|Source and destination overlap|Argument '[a-z]+' of function|Process terminating)"
no_sanitizer_report() {
        ! grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|$MEMCHECK_ERROR" "$@" 2>/dev/null
        ok $? "no sanitizer or memcheck report"
}

#!/bin/sh
# demo.sh -- the daemon's main job on the embedded default, for a first run:
# builds (tests/setup.sh), makes sure a redis-server answers on 127.0.0.1:6379,
# starts `multichanneld run --embedded-kafka`, publishes the shipped example
# stream (the contract's scenarios, in timestamp order, kept across the two
# topics by publish --in-order) and prints the outcomes as they appear on the
# outcome topic.  Stops everything at the end,
# the newest first, each waited for: the reader before the daemon, whose
# embedded cluster must outlive every client of it (a client left running
# when the brokers go logs "brokers are down" errors), Redis last.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh build >/dev/null
bin=build/multichanneld
work=$(mktemp -d /tmp/multichanneld-demo.XXXXXX)
pids=""         # what the demo started, the newest first
stop() {  # stop PID...: each sent SIGTERM and waited for, in the order given
        for p; do
                kill "$p" 2>/dev/null || continue
                wait "$p" 2>/dev/null || true
        done
}
trap 'stop $pids; rm -rf "$work"' EXIT INT TERM

if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
        echo "demo: starting redis-server on 127.0.0.1:6379"
        redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly yes --dir "$work" \
                --logfile "$work/redis.log" &
        pids="$! $pids"
        until redis-cli -p 6379 ping >/dev/null 2>&1; do sleep 0.2; done
fi

cat > "$work/mcd.conf" <<CONF
# A demonstration configuration: its own key prefix, so that it never
# mixes with another instance's state in the same Redis.
redis.key_prefix = mcd-demo-$$:
kafka.group.id = multichanneld-demo-$$
CONF
"$bin" run --embedded-kafka -c "$work/mcd.conf" > "$work/run.out" 2> "$work/run.log" &
pids="$! $pids"
until grep -q "bootstrap.servers=" "$work/run.out" 2>/dev/null; do sleep 0.2; done
bootstrap=$(sed -n 's/.*bootstrap.servers=\([^ ]*\).*/\1/p' "$work/run.out")
echo "demo: $(head -1 "$work/run.out")"

for f in tests/scenarios/*.jsonl; do
        case $f in *.expected.jsonl) ;; *) cat "$f" ;; esac
done | sed 's/.*"occurred_at": *"\([^"]*\)".*/\1\t&/' | sort -s -t "$(printf '\t')" -k1,1 | cut -f2- \
        > "$work/events.jsonl"
"$bin" publish --in-order -b "$bootstrap" "$work/events.jsonl"
echo "demo: outcomes on partnercenter.multichannel.outcomes.v1 (the daemon's log: $work/run.log):"
"$bin" tail -b "$bootstrap" > "$work/outcomes.jsonl" &
tail_pid=$!
pids="$tail_pid $pids"
want=$("$bin" replay --now "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$work/events.jsonl" | wc -l)
tries=0
while [ "$(wc -l < "$work/outcomes.jsonl")" -lt "$want" ] && [ $tries -lt 300 ]; do
        sleep 0.2
        tries=$((tries + 1))
done
stop "$tail_pid"        # while the cluster it reads runs
cat "$work/outcomes.jsonl"
echo "demo: $(wc -l < "$work/outcomes.jsonl") outcomes published for $(wc -l < "$work/events.jsonl") events (replay gives $want)"

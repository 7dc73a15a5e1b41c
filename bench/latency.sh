#!/usr/bin/env bash
# Submit → assigned latency with WORKERS simulated workers and QUEUED queued jobs, and
# the coordinator's RSS. Starts a real release `pinpool coordinator` on a free loopback
# port; `pinpool-bench latency` registers the workers (DEALER sockets served by one
# thread, one GPU and one slot each), queues jobs that need 8 GPUs (so they stay
# queued), then submits PROBES plain jobs one at a time and times each from `submit`
# sent to `assign` received by a simulated worker.
# Usage: bench/latency.sh [WORKERS] [QUEUED] [PROBES] [PROBE_PRIORITY]
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-1000}
queued=${2:-100000}
probes=${3:-2000}
priority=${4:-0}
./scripts/deps.sh
swift build -c release --product pinpool >/dev/null
swift build -c release --product pinpool-bench >/dev/null
bindir="$(swift build -c release --show-bin-path)"
data="$(mktemp -d -t pinpool-latency-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
endpoint="tcp://127.0.0.1:$port"
pids=()
# SIGTERM, and SIGKILL for whatever is still there 5 s later (a coordinator deep in a long
# batch does not get to its signal handler soon).
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
cleanup() { stop_all; rm -rf "$data"; }
trap cleanup EXIT

"$bindir/pinpool" coordinator --data "$data/coordinator" --bind "$endpoint" >"$data/coordinator.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
for _ in $(seq 1 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

# One simulator thread holds WORKERS + 1 sockets; give it the descriptors.
ulimit -n "$(( $(ulimit -Hn) < 65536 ? $(ulimit -Hn) : 65536 ))" 2>/dev/null || true
"$bindir/pinpool-bench" latency --coordinator "$endpoint" --pid "$coordinator" --workers "$workers" \
  --queued "$queued" --probes "$probes" --probe-priority "$priority" --time-limit 600
cpu=$(ps -o time= -p "$coordinator" | tr -d ' ')
echo "coordinator CPU time over the run: $cpu"
echo "targets (DESIGN.md): p99 < 5 ms, coordinator <= 150 MB RSS, with 1,000 workers and 100,000 queued jobs"

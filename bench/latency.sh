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
source bench/common.sh
bench_setup latency
# With PINPOOL_BIN_DIR, its own pinpool-bench (it must speak that pinpool's protocol), and
# no build in the middle of an alternating comparison.
[ -n "${PINPOOL_BIN_DIR:-}" ] || swift build -c release --product pinpool-bench >/dev/null
endpoint="$PINPOOL_COORDINATOR"

# Probes are hundreds of single submits from one client: lift the per-client rate limit.
"$bindir/pinpool" coordinator --data "$data/coordinator" --bind "$endpoint" --submit-rate 0 >"$data/coordinator.log" 2>&1 &
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

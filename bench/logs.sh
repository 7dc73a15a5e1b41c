#!/usr/bin/env bash
# Log throughput: one job whose step prints SIZE bytes of 100-byte lines (`yes LINE |
# head -c SIZE`), run by a real `pinpool worker --no-runtime --no-gpu` against a real
# `pinpool coordinator`, timed from `submit` until the job is final in the coordinator's
# store with every line stored (the `log_chunks` index, polled read-only). Then the same
# line data through a plain pipe into a file (`yes LINE | head -c SIZE | cat > FILE`),
# in the same run and on the same disk, and the ratio.
# Usage: bench/logs.sh [SIZE_BYTES]   (default 1000000000; e.g. 100000000 for a quick run)
# TIME_LIMIT (seconds, default 1800) bounds the wait for the job. ROUNDS=R (default 1)
# runs pinpool and the pipe copy R times each, alternating, and compares the medians: the
# pipe copy alone varies between about 600 and 1,150 MB/s from run to run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1000000000}
limit=${TIME_LIMIT:-1800}
rounds=${ROUNDS:-1}
line="pinpool-log-bench $(printf 'x%.0s' $(seq 1 81))" # 99 characters; `yes` adds the newline
lines=$((size / 100))
bytes=$((lines * 100))
source bench/common.sh
bench_setup logs
bin="$bindir/pinpool"
peak_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
root="$data"

# One round: a fresh coordinator and worker, the job, its figures; then both stop.
pinpool_round() {
  start_round "$1"
  "$bin" coordinator --data "$data/coordinator" --bind "$PINPOOL_COORDINATOR" >"$data/coordinator.log" 2>&1 &
  coordinator=$!
  pids+=("$coordinator")
  "$bin" worker --root "$data/worker" --name logs-bench --slots 1 --no-gpu --no-runtime >"$data/worker.log" 2>&1 &
  worker=$!
  pids+=("$worker")
  for _ in $(seq 1 200); do
    [ "$("$bin" workers --json 2>/dev/null | grep -c '"online"')" -ge 1 ] && break
    sleep 0.1
  done
  cat >"$data/print.json" <<JSON
{ "run": [ { "method": "shell.run", "params": { "message": "yes '$line' | head -c $bytes" } } ] }
JSON

  db="$data/coordinator/pinpool.sqlite"
  start=$(date +%s.%N)
  id=$("$bin" submit "$data/print.json" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  # Poll the store read-only (a WAL reader): first the job's state, then, once it is
  # final, that every line is indexed (`log_chunks`). Then, with the clock stopped, read
  # the indexed chunks back from the job's log file and count the stdout lines and their
  # bytes (stored lines drop the newline).
  result=$(python3 - "$db" "$id" "$lines" "$limit" "$data/coordinator/logs" <<'PY'
import sqlite3, struct, sys, time
db, job, want, limit, logs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
deadline = time.time() + limit
state = None
while time.time() < deadline:
    state = c.execute("select state from jobs where id = ?", (job,)).fetchone()[0]
    if state in ("succeeded", "failed", "cancelled"):
        stored = c.execute("select coalesce(max(last_seq), 0) from log_chunks where job_id = ?", (job,)).fetchone()[0]
        if stored >= want or state != "succeeded":
            break
    time.sleep(0.05)
end = time.time()
count = chars = 0
f = None  # the job's log file, opened at its first chunk there (a small log has none)
rows = "select offset, length, data from log_chunks where job_id = ? order by first_seq"
for offset, length, data in c.execute(rows, (job,)):
    if offset is None:  # a small chunk, kept in its index row
        chunk = data
    else:
        f = f or open(f"{logs}/{job}.log", "rb")
        f.seek(offset)
        chunk = f.read(length)
    at = 0
    while at < length:
        stream, size = struct.unpack_from("<BI", chunk, at)
        if stream == 0:
            count += 1
            chars += size
        at += 13 + size
print(state, end, count, chars)
PY
  )
  read -r state end count chars <<<"$result"
  coordinator_peak=$(peak_mb "$coordinator")
  worker_peak=$(peak_mb "$worker")
  db_mb=$(du -sm "$data/coordinator" | cut -f1)
  stored=$((chars + count)) # each stored line plus the newline it was printed with
  if [ "$state" != succeeded ] || [ "$stored" -ne "$bytes" ]; then
    echo "job $id: state $state, stored $count lines / $stored bytes of $lines / $bytes; see $data" >&2
    stop_all
    trap - EXIT
    exit 1
  fi
  pinpool_line=$(python3 -c "b=$bytes; s=$start; e=$end; print(f'pinpool-logs bytes={b} lines=$lines stored_bytes=$stored total_s={e-s:.2f} mb_per_s={b/1e6/(e-s):.1f}')")
  echo "$pinpool_line"
  echo "  peak RSS: coordinator ${coordinator_peak} MB, worker ${worker_peak} MB; store on disk ${db_mb} MB"
  stop_all
  rm -rf "$data/coordinator" "$data/worker"
}

# The baseline: the same bytes through a pipe into a file on the same disk, then the
# same with an fsync at the end (the store fsyncs every batch it acknowledges).
baseline_round() {
  set +o pipefail # `yes` ends on SIGPIPE once `head` has its bytes
  t0=$(date +%s.%N)
  yes "$line" | head -c "$bytes" | cat >"$root/baseline.out"
  t1=$(date +%s.%N)
  set -o pipefail
  sync "$root/baseline.out"
  t2=$(date +%s.%N)
  copied=$(stat -c %s "$root/baseline.out")
  rm -f "$root/baseline.out"
  [ "$copied" -eq "$bytes" ] || { echo "baseline wrote $copied bytes, expected $bytes" >&2; exit 1; }
  python3 -c "b=$bytes; t0=$t0; t1=$t1; t2=$t2; print(f'pipe-to-file bytes={b} total_s={t1-t0:.2f} mb_per_s={b/1e6/(t1-t0):.1f} (with fsync: {t2-t0:.2f} s, {b/1e6/(t2-t0):.1f} MB/s)')"
}

pinpool_rates=()
plain_rates=()
synced_rates=()
for r in $(seq 1 "$rounds"); do
  # Not in a subshell: the round's daemons stay in this shell's `pids`, for the exit trap.
  pinpool_round "$r" >"$root/round-$r.out"
  cat "$root/round-$r.out"
  pinpool_rates+=("$(sed -n 's/^pinpool-logs.*mb_per_s=\([0-9.]*\).*/\1/p' "$root/round-$r.out")")
  baseline_line=$(baseline_round)
  echo "$baseline_line"
  plain_rates+=("$(sed -n 's/.* mb_per_s=\([0-9.]*\) .*/\1/p' <<<"$baseline_line")")
  synced_rates+=("$(sed -n 's/.*s, \([0-9.]*\) MB\/s.*/\1/p' <<<"$baseline_line")")
done
p=$(median "${pinpool_rates[@]}")
plain=$(median "${plain_rates[@]}")
synced=$(median "${synced_rates[@]}")
if [ "$rounds" -gt 1 ]; then
  echo "medians of $rounds rounds: pinpool ${p} MB/s, pipe-to-file ${plain} MB/s (with fsync: ${synced} MB/s)"
fi
python3 -c "p=$p; plain=$plain; synced=$synced; print(f'ratio pinpool/pipe-to-file = {100*p/plain:.1f}% ({100*p/synced:.1f}% of the fsynced copy) (target >= 200 MB/s and >= 25%)')"

#!/usr/bin/env bash
# End-to-end dispatch of N trivial jobs (`echo job $INDEX`), submitted as one array,
# through M real worker processes on this machine; then the same N jobs as one
# `sbatch --array` on the single-node Slurm that ../shared/peers/slurm starts, in the
# same run, and the ratio. Usage: bench/dispatch.sh [N] [WORKERS] [SLOTS]
# ROUNDS=R (default 1) runs pinpool and the floor R times each, alternating, each pinpool
# round on a pool started afresh, and compares the medians: this machine's speed drifts
# by a third within an hour, and one run can land in a slow spell.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
workers=${2:-2}
slots=${3:-16}
rounds=${ROUNDS:-1}
source bench/common.sh
bench_setup bench
bin="$bindir/pinpool"
root="$data"
compiler=$(command -v cc || command -v clang || command -v gcc || true)
floor_bin=""
if [ -n "$compiler" ] && "$compiler" -O2 -o "$root/spawn-floor" bench/spawn-floor.c 2>"$root/spawn-floor.err"; then
  floor_bin="$root/spawn-floor"
fi
rate() { sed -n 's/.*jobs_per_s=\([0-9.]*\).*/\1/p' <<<"$1"; }

# One round: a fresh pool (coordinator and workers), the array, its figures; then the
# pool is stopped. Prints the round's `pinpool-array` line (and, with SHOW_CPU, its CPU).
pinpool_round() {
  start_round "$1"
  "$bin" coordinator --data "$data/coordinator" --bind "$PINPOOL_COORDINATOR" >"$data/coordinator.log" 2>&1 &
  pids+=($!)
  for i in $(seq 1 "$workers"); do
    "$bin" worker --root "$data/worker-$i" --name "bench-$i" --slots "$slots" --no-gpu --no-runtime \
      >"$data/worker-$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 200); do
    [ "$("$bin" workers --json 2>/dev/null | grep -c '"online"')" -ge "$workers" ] && break
    sleep 0.1
  done
  cat >"$data/trivial.json" <<'JSON'
{ "run": [ { "method": "shell.run", "params": { "message": "echo job {{args.index}}" } } ] }
JSON

  start=$(date +%s.%N)
  "$bin" submit "$data/trivial.json" --array "1-$n" --json >/dev/null
  submitted=$(date +%s.%N)
  # Poll the store read-only (a WAL reader) from one process: a `python3` started per poll
  # cost about 25 ms of CPU each, half a core taken from the pool it measures.
  db="$data/coordinator/pinpool.sqlite"
  result=$(python3 - "$db" "$n" <<'PY'
import sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
# Counted on the state index: summing over every row cost the machine it measures a
# scan of the whole table every 20 ms (2% of its CPU at 3,000 jobs).
count = "select count(*) from jobs where state = ?"
while True:
    done = c.execute(count, ("succeeded",)).fetchone()[0]
    failed = c.execute(count, ("failed",)).fetchone()[0]
    if failed > 0:
        print("failed", time.time())
        break
    if done >= n:
        print("ok", time.time())
        break
    time.sleep(0.02)
PY
  )
  read -r outcome end <<<"$result"
  [ "$outcome" = ok ] || { echo "jobs failed; see $data" >&2; stop_all; trap - EXIT; exit 1; }
  pinpool_line=$(python3 -c "n=$n; s=$start; b=$submitted; e=$end; print(f'pinpool-array N={n} workers=$workers slots=$slots submit_s={b-s:.2f} total_s={e-s:.2f} jobs_per_s={n/(e-s):.1f}')")
  echo "$pinpool_line"
  if [ -n "${SHOW_CPU:-}" ]; then
    # utime+stime of each daemon, and of the children it reaped (the jobs' shells), in ms
    self_total=0
    children_total=0
    for p in "${pids[@]}"; do
      read -r -a st <"/proc/$p/stat"
      switches=$(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { n += $2 } END { print n }')
      echo "cpu pid=$p $(ps -o args= -p "$p" | cut -d' ' -f2) self_ms=$(((st[13] + st[14]) * 10))" \
        "children_ms=$(((st[15] + st[16]) * 10)) live_thread_switches=$switches"
      self_total=$((self_total + (st[13] + st[14]) * 10))
      children_total=$((children_total + (st[15] + st[16]) * 10))
    done
    # The shells do the same work in every run, so pinpool's CPU over theirs compares two
    # builds even when this machine's speed drifts between runs (by a third within an hour).
    python3 -c "n=$n; s=$self_total; c=$children_total; print(f'cpu per job: pinpool {s/n:.2f} ms, jobs\' shells {c/n:.2f} ms, pinpool/shells {s/max(c,1):.2f}')"
  fi
  stop_all
}

pinpool_lines=()
floor_lines=()
for r in $(seq 1 "$rounds"); do
  # Not in a subshell: the round's daemons stay in this shell's `pids`, for the exit trap.
  pinpool_round "$r" >"$root/round-$r.out"
  line=$(cat "$root/round-$r.out")
  echo "$line"
  pinpool_lines+=("$(grep '^pinpool-array' <<<"$line")")
  # The floor, with pinpool stopped: the same commands started by a loop in C
  # (bench/spawn-floor.c), as many at a time as the pool has slots. No dispatch through a
  # scheduler can beat it; the share of it pinpool reaches says what its work per job costs.
  if [ -n "$floor_bin" ]; then
    floor_lines+=("$("$floor_bin" "$n" $((workers * slots)))")
    echo "${floor_lines[-1]}"
  fi
done
[ -n "$floor_bin" ] || echo "spawn-floor: no C compiler (cc, clang or gcc); skipped"
pinpool_rate=$(median $(for l in "${pinpool_lines[@]}"; do rate "$l"; done))
if [ "$rounds" -gt 1 ]; then
  echo "pinpool-array median of $rounds rounds: jobs_per_s=$pinpool_rate"
fi
if [ -n "$floor_bin" ]; then
  floor_rate=$(median $(for l in "${floor_lines[@]}"; do rate "$l"; done))
  [ "$rounds" -gt 1 ] && echo "spawn-floor median of $rounds rounds: jobs_per_s=$floor_rate"
  python3 -c "print(f'pinpool = {$pinpool_rate / $floor_rate * 100:.0f}% of the process-per-job floor')"
fi

# The peer, on the same machine in the same run.
if [ "${SKIP_SLURM:-0}" = 1 ]; then exit 0; fi
peer=../shared/peers/slurm
eval "$(bash "$peer/start.sh" | grep '^export')"
slurm_line=$(bash "$peer/bench-array.sh" "$n")
bash "$peer/stop.sh" >/dev/null
echo "$slurm_line"
slurm_rate=$(rate "$slurm_line")
python3 -c "print(f'ratio pinpool/slurm = {$pinpool_rate / $slurm_rate:.1f}x (target >= 100x, and >= 1000 jobs/s)')"

# Shared set-up of the benchmarks; sourced, not run. After `bench_setup NAME`:
# $bindir holds the release binaries (or PINPOOL_BIN_DIR's), $data a fresh folder
# ($bench_root, removed on exit), $port a free loopback port and PINPOOL_COORDINATOR its
# endpoint; add every daemon's pid to `pids` and `stop_all` (run on exit) ends them:
# SIGTERM, then SIGKILL 5 s later for whatever a long batch kept from its signal handler.
# `start_round N` gives a round its own folder, port and daemon list.
bench_setup() {
  ./scripts/deps.sh
  if [ -n "${PINPOOL_BIN_DIR:-}" ]; then
    # A/B comparisons: binaries built elsewhere (this machine's speed drifts by a third
    # within an hour, so two builds are compared in alternating runs, not hours apart).
    bindir="$PINPOOL_BIN_DIR"
  else
    swift build -c release --product pinpool >/dev/null
    bindir="$(swift build -c release --show-bin-path)"
  fi
  data="$(mktemp -d -t "pinpool-$1-XXXXXX")"
  bench_root="$data"
  port="$(free_port)"
  export PINPOOL_COORDINATOR="tcp://127.0.0.1:$port"
  pids=()
  trap 'stop_all; rm -rf "$bench_root"' EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A round of a benchmark that starts its daemons afresh each time (ROUNDS): $data becomes
# $bench_root/round-N, `pids` empties, and a new free port becomes PINPOOL_COORDINATOR's.
# Call it in this shell, not a subshell, so the exit trap sees the round's daemons.
start_round() {
  data="$bench_root/round-$1"
  mkdir -p "$data"
  pids=()
  port="$(free_port)"
  export PINPOOL_COORDINATOR="tcp://127.0.0.1:$port"
}

# The median of the numbers given, to two places.
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' "$@"; }

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

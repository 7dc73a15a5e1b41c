#!/usr/bin/env bash
# Isolated Python environment provisioning, cold and warm cache. pinpool: a real job whose
# one step makes its venv and installs a small pinned requirement set the way Pinokio
# install scripts do (`shell.run` with "venv": "env" and `uv pip install -r
# requirements.txt`), run by a real `pinpool worker` with its private runtime against a
# real coordinator, timed from submit to finished (the store's times). The baseline, in
# the same run: `python3 -m venv` + `pip install -r` of the same file, with the same
# interpreter. Cold: each side's package cache empty (packages come from PyPI). Warm: a
# new job (new workspace, new venv) or a new venv, the cache kept; ROUNDS times each
# (default 3), alternating, medians compared. Target (DESIGN.md): warm >= 10x faster.
# The worker's private runtime is installed by a first job and not counted: it is made
# once per worker, not per environment. Needs PyPI. Usage: bench/venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
source bench/common.sh
bench_setup venv
bin="$bindir/pinpool"
python=$(command -v /usr/bin/python3 || command -v python3)

mkdir -p "$data/bundle"
cat >"$data/bundle/requirements.txt" <<'REQ'
requests==2.32.3
certifi==2024.8.30
charset-normalizer==3.4.0
idna==3.10
urllib3==2.2.3
tqdm==4.67.1
PyYAML==6.0.2
REQ
cat >"$data/bundle/provision.json" <<'JSON'
{ "run": [ { "method": "shell.run", "params": { "venv": "env", "message": "uv pip install -r requirements.txt" } } ] }
JSON
cat >"$data/runtime.json" <<'JSON'
{ "run": [ { "method": "shell.run", "params": { "message": "uv --version" } } ] }
JSON

"$bin" coordinator --data "$data/coordinator" --bind "$PINPOOL_COORDINATOR" >"$data/coordinator.log" 2>&1 &
pids+=($!)
"$bin" worker --root "$data/worker" --name venv-bench --slots 1 --no-gpu >"$data/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  "$bin" workers --json 2>/dev/null | grep -q '"online"' && break
  sleep 0.1
done

# Runs a job to its end and prints its seconds from submit to finished, from the store's
# times (the CLI's following adds nothing to them). A job that fails stops the benchmark,
# and so does a provisioning job (first argument `venv`) whose environment record lacks a
# pinned package. Usage: job_seconds venv|plain BUNDLE [SUBMIT FLAGS...]
job_seconds() {
  local id check=$1
  shift
  id=$("$bin" submit "$@" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  if ! "$bin" logs "$id" --follow >"$data/job-$id.log" 2>&1; then :; fi
  "$bin" status "$id" --json >"$data/job-$id.json"
  python3 - "$data/job-$id.json" "$data/job-$id.log" "$check" "$data/bundle/requirements.txt" <<'PY'
import json, sys
from datetime import datetime
job = json.load(open(sys.argv[1]))
if job["state"] != "succeeded":
    tail = "".join(open(sys.argv[2]).readlines()[-20:])
    sys.exit(f"job {job['id']} {job['state']}: {job.get('error')}; the end of its log:\n{tail}")
if sys.argv[3] == "venv":
    # Every pinned package is in the venv the job built (its environment record).
    venvs = (job.get("environment") or {}).get("venvs") or []
    packages = {p.lower() for venv in venvs for p in venv.get("packages", [])}
    pins = {l.strip().lower() for l in open(sys.argv[4]) if l.strip()}
    if not pins <= packages:
        sys.exit(f"job {job['id']}: {sorted(pins - packages)} not in the venv it built: {venvs}")
at = lambda key: datetime.fromisoformat(job[key].replace("Z", "+00:00")).timestamp()
print(f"{at('finishedAt') - at('submittedAt'):.2f}")
PY
}

# python3 -m venv + pip install into a new venv with the given pip cache; prints seconds.
baseline_seconds() {
  local venv="$data/baseline-$1" cache="$2" t0 t1
  t0=$(date +%s.%N)
  env -u PIP_FIND_LINKS -u PIP_CONFIG_FILE PIP_CACHE_DIR="$cache" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    sh -c '"$1" -m venv "$2" && "$2/bin/pip" install -q -r "$3"' sh "$python" "$venv" \
    "$data/bundle/requirements.txt" >"$data/baseline-$1.log" 2>&1 ||
    { tail -20 "$data/baseline-$1.log" >&2; echo "the baseline's install failed" >&2; exit 1; }
  t1=$(date +%s.%N)
  "$venv/bin/python" -c 'import requests, yaml, tqdm' ||
    { echo "baseline venv lacks the packages" >&2; exit 1; }
  rm -rf "$venv"
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}

runtime=$(job_seconds plain "$data/runtime.json")
echo "runtime install, once per worker (not counted): ${runtime} s"
cold=$(job_seconds venv "$data/bundle" --entry provision.json)
base_cold=$(baseline_seconds cold "$data/pip-cache")
echo "cold: pinpool ${cold} s (uv cache empty), baseline ${base_cold} s (pip cache empty; $("$python" --version))"
warm=()
base_warm=()
for r in $(seq 1 "$rounds"); do
  warm+=("$(job_seconds venv "$data/bundle" --entry provision.json)")
  base_warm+=("$(baseline_seconds "warm-$r" "$data/pip-cache")")
  echo "warm round $r: pinpool ${warm[-1]} s, baseline ${base_warm[-1]} s"
done
w=$(median "${warm[@]}")
b=$(median "${base_warm[@]}")
echo "pinpool-venv requirements=7 cold_s=${cold} warm_s=${w} (median of ${rounds})"
echo "baseline-venv requirements=7 cold_s=${base_cold} warm_s=${b} (median of ${rounds})"
python3 -c "print(f'ratio baseline/pinpool: warm {$b / $w:.1f}x (target >= 10x), cold {$base_cold / $cold:.1f}x')"

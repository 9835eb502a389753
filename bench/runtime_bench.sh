#!/usr/bin/env bash
# The edge-cloud runtime's speed on this machine, over loopback: a LeNet split at ReLU2 served by one
# `splitleak serve`, measured
#   - one edge, batch 1, window 1: end-to-end latency and the runtime's overhead (end-to-end minus the head's and
#     the tail's compute), p50;
#   - 16 edge processes at once: requests per second answered by the server (from two `splitleak stats` samples
#     taken while all 16 run);
# over plain TCP and over mutual TLS 1.3, each REPEATS times; prints the medians as a Markdown table and writes
# RESULTS_DIR/results.md and RESULTS_DIR/results.json.
#
#   bash bench/runtime_bench.sh [MODEL.ckpt] [RESULTS_DIR]        (REPEATS=3 EDGES=16 IMAGES=5000 by default)
# The model defaults to runs/lenet.ckpt (a trained LeNet); MNIST must be in $SPLITLEAK_DATA (or data/).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-runs/lenet.ckpt}"
RESULTS_DIR="${2:-runs/runtime-bench}"
REPEATS="${REPEATS:-3}"
EDGES="${EDGES:-16}"
IMAGES="${IMAGES:-5000}"
B="${SPLITLEAK:-build/bin/splitleak}"
export OMP_NUM_THREADS=1
[ -x "$B" ] || { echo "runtime_bench: build first ($B not found)" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "runtime_bench: no model at $MODEL (train one: splitleak train --out $MODEL)" >&2; exit 2; }
mkdir -p "$RESULTS_DIR"
# shellcheck source=bench/serve_lib.sh
. bench/serve_lib.sh

"$B" split --model "$MODEL" --at ReLU2 --out "$work/deploy" >/dev/null

# A deployment CA, a server and an edge certificate (as in the README).
pki="$work/pki"
mkdir -p "$pki"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout "$pki/ca.key" -out "$pki/ca.crt" \
  -subj "/CN=bench CA"
for who in server edge; do
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$who.key" -out "$pki/$who.csr" \
    -subj "/CN=$who"
done
printf "subjectAltName=IP:127.0.0.1\n" >"$pki/server.ext"
ossl x509 -req -days 2 -in "$pki/server.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/server.crt" -extfile "$pki/server.ext"
ossl x509 -req -days 2 -in "$pki/edge.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/edge.crt"

start_server() {  # $1: plain|tls
  local tls=()
  [ "$1" = tls ] && tls=(--tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --tls-ca "$pki/ca.crt")
  serve_start "$work/deploy/cloud.ckpt" "${tls[@]}"
  port="$server_port"
}
client_flags() {  # $1: plain|tls
  if [ "$1" = tls ]; then
    echo "--tls-cert $pki/edge.crt --tls-key $pki/edge.key --tls-ca $pki/ca.crt"
  fi
}

results="$work/results.jsonl"
: >"$results"
for transport in plain tls; do
  start_server "$transport"
  for r in $(seq "$REPEATS"); do
    # One edge, batch 1.
    # shellcheck disable=SC2046
    "$B" edge --model "$work/deploy/edge.ckpt" --connect "127.0.0.1:$port" --images "$IMAGES" --warmup 200 \
      --threads 1 --json $(client_flags "$transport") 2>/dev/null >"$work/one.json"
    # EDGES edges at once; the rate is read from the server while all of them run.
    pids=()
    for i in $(seq "$EDGES"); do
      # shellcheck disable=SC2046
      "$B" edge --model "$work/deploy/edge.ckpt" --connect "127.0.0.1:$port" --images "$IMAGES" --threads 1 --json \
        --name "bench-$i" $(client_flags "$transport") >"$work/edge$i.json" 2>/dev/null &
      pids+=($!)
    done
    sleep 1
    # shellcheck disable=SC2046
    "$B" stats --connect "127.0.0.1:$port" --json $(client_flags "$transport") 2>/dev/null >"$work/s1.json"
    sleep 2
    # shellcheck disable=SC2046
    "$B" stats --connect "127.0.0.1:$port" --json $(client_flags "$transport") 2>/dev/null >"$work/s2.json"
    for p in "${pids[@]}"; do wait "$p"; done
    python3 - "$transport" "$work" "$EDGES" >>"$results" <<'EOF'
import json, sys
transport, work, edges = sys.argv[1], sys.argv[2], int(sys.argv[3])
one = json.load(open(f"{work}/one.json"))
s1, s2 = json.load(open(f"{work}/s1.json")), json.load(open(f"{work}/s2.json"))
rate = (s2["requests"]["answered"] - s1["requests"]["answered"]) / (s2["uptime_s"] - s1["uptime_s"])
many = [json.load(open(f"{work}/edge{i}.json")) for i in range(1, edges + 1)]
print(json.dumps({
    "transport": transport,
    "e2e_p50_us": one["latency_ms"]["end_to_end"]["p50"] * 1e3,
    "overhead_p50_us": one["latency_ms"]["overhead"]["p50"] * 1e3,
    "overhead_p99_us": one["latency_ms"]["overhead"]["p99"] * 1e3,
    "edge_p50_us": one["latency_ms"]["edge"]["p50"] * 1e3,
    "cloud_p50_us": one["latency_ms"]["cloud_compute"]["p50"] * 1e3,
    "single_edge_rps": one["requests_per_s"],
    "server_rps_16": rate,
    "mean_batch_16": s2["batches"]["mean_rows"],
    "load_average": one.get("load_average", "unknown"),
    "e2e_p50_us_16": sorted(m["latency_ms"]["end_to_end"]["p50"] for m in many)[edges // 2] * 1e3,
    "accuracy": one["accuracy"],
}))
EOF
  done
  serve_stop
done

python3 - "$results" "$RESULTS_DIR" "$REPEATS" "$EDGES" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, sys, statistics, datetime, platform, os
path, out, repeats, edges, commit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = [json.loads(l) for l in open(path)]
def med(t, k): return statistics.median(r[k] for r in rows if r["transport"] == t)
cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
date = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
summary = {"date": date, "commit": commit, "cpu": cpu, "cores": os.cpu_count(), "repeats": repeats, "edges": edges,
           "runs": rows,
           "median": {t: {k: med(t, k) for k in rows[0] if k not in ("transport", "load_average")}
                      for t in ("plain", "tls")}}
loads = ", ".join(sorted(set(r["load_average"] for r in rows)))
json.dump(summary, open(f"{out}/results.json", "w"), indent=2)
m = summary["median"]
lines = [
    f"LeNet split at ReLU2 over loopback, {date}, commit {commit}, {cpu}, {os.cpu_count()} cores; "
    f"medians of {repeats} runs (`bash bench/runtime_bench.sh`); load averages during the runs: {loads}",
    "",
    "| | plain TCP | mutual TLS 1.3 |",
    "|---|---|---|",
    f"| one edge, batch 1: end-to-end p50 | {m['plain']['e2e_p50_us']:.0f} µs | {m['tls']['e2e_p50_us']:.0f} µs |",
    f"| one edge: runtime overhead p50 (end-to-end − head − tail) | {m['plain']['overhead_p50_us']:.0f} µs | {m['tls']['overhead_p50_us']:.0f} µs |",
    f"| one edge: overhead p99 | {m['plain']['overhead_p99_us']:.0f} µs | {m['tls']['overhead_p99_us']:.0f} µs |",
    f"| one edge: requests/s | {m['plain']['single_edge_rps']:.0f} | {m['tls']['single_edge_rps']:.0f} |",
    f"| {edges} edges: requests/s answered by the server | {m['plain']['server_rps_16']:.0f} | {m['tls']['server_rps_16']:.0f} |",
    f"| {edges} edges: mean tail batch (rows) | {m['plain']['mean_batch_16']:.2f} | {m['tls']['mean_batch_16']:.2f} |",
    f"| {edges} edges: end-to-end p50 (median edge) | {m['plain']['e2e_p50_us_16']:.0f} µs | {m['tls']['e2e_p50_us_16']:.0f} µs |",
]
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

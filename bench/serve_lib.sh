# Sourced by the runtime benchmarks (bench/adaptive_split.sh, bench/runtime_bench.sh, bench/runtime_sweep.sh): a temporary folder $work,
# removed at exit with any server still running, and a `splitleak serve` on a free loopback port.
# Needs $B, the splitleak binary.
work="$(mktemp -d)"
server_pid=""
serve_cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap serve_cleanup EXIT

# serve_start CLOUD.ckpt [SERVE_FLAGS...]: serves its tails with one compute thread (and the flags, e.g. --tls-*);
# sets server_addr (127.0.0.1:PORT) and server_port. Exits 1, with the server's error, when it does not start
# listening within 5 s.
serve_start() {
  "$B" serve --model "$1" --listen 127.0.0.1:0 --threads 1 --quiet "${@:2}" >"$work/serve.out" 2>"$work/serve.err" &
  server_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
  server_addr="$(grep -o '127.0.0.1:[0-9]*' "$work/serve.out" | head -1)"
  server_port="${server_addr#*:}"
  [ -n "$server_addr" ] || {
    echo "$(basename "$0"): the server did not start: $(cat "$work/serve.err")" >&2
    exit 1
  }
}

# serve_stop: SIGTERM (the server drains), then waits for it.
serve_stop() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

#!/usr/bin/env bash
# CPU per gRPC Reserve of each process (the server's workers, Redis, h2load),
# from /proc/<pid>/stat over one h2load run: a steadier measure than req/s on
# a shared machine. Run after `npm run build`, from the repository root:
#   bash bench/cpu-per-call.sh dist/src/main.js            # ticket-queue
#   bash bench/cpu-per-call.sh dist/bench/grpc-js-server.js  # the grpc-js reference
# Environment: WORKERS (default 1), CALLS (default 40000).
set -euo pipefail
server=${1:?usage: cpu-per-call.sh <server.js>}
calls=${CALLS:-40000}
dir=$(mktemp -d)
redis_port=$((20000 + RANDOM % 10000))
port=$((30000 + RANDOM % 10000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
trap 'kill "$server_pid" 2>/dev/null; redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1; rm -rf "$dir"' EXIT
sleep 0.3
PORT=$port HOST=127.0.0.1 REDIS_URL=redis://127.0.0.1:$redis_port WORKERS=${WORKERS:-1} ADMIN_TOKEN=bench KEY_PREFIX=cpu \
  LOG_LEVEL=warn RATE_LIMIT_PER_MINUTE=0 node "$server" >/dev/null &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
printf '\0\0\0\0\0' >"$dir/reserve.bin" # an empty ReserveRequest: a new user per call
run() { h2load -n "$1" -c 8 -m 16 -d "$dir/reserve.bin" -H "content-type: application/grpc" -H "te: trailers" "http://127.0.0.1:$port/ticketqueue.v1.TicketQueueService/Reserve"; }
run 10000 >/dev/null # warm-up
pids="$server_pid $(pgrep -P "$server_pid" | tr '\n' ' ') $(cat "$dir/redis.pid")"
ticks() { for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat"; done; }
mapfile -t before < <(ticks)
run "$calls" | grep -E "finished in|requests:|traffic:"
mapfile -t after < <(ticks)
hz=$(getconf CLK_TCK)
i=0
for p in $pids; do
  micros=$(( (after[i] - before[i]) * 1000000 / hz / calls ))
  if [ "$micros" -gt 0 ]; then echo "$(cat "/proc/$p/comm") (pid $p): $micros µs of CPU per call"; fi
  i=$((i + 1))
done

#!/usr/bin/env bash
# Smoke run of the built service (npm run build first) on a given Node binary:
# start it against a fresh redis-server, call it over every transport, stop it.
# Usage: scripts/smoke.sh [path/to/node]
set -euo pipefail
cd "$(dirname "$0")/.."
node_bin=${1:-node}
free_port() { "$node_bin" -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

redis_port=$(free_port)
port=$(free_port)
tmp=$(mktemp -d)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
svc_pid=
cleanup() {
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null || true
  kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "smoke: $("$node_bin" --version), service on :$port, redis on :$redis_port"
PORT=$port HOST=127.0.0.1 REDIS_URL=redis://127.0.0.1:$redis_port ADMIN_TOKEN=my-secret-token \
  "$node_bin" dist/src/main.js >"$tmp/service.log" 2>&1 &
svc_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

base=http://127.0.0.1:$port
expect() { # expect <what> <pattern> <output>
  if ! grep -q -- "$2" <<<"$3"; then
    echo "smoke FAILED: $1: wanted $2, got: $3" >&2
    cat "$tmp/service.log" >&2
    exit 1
  fi
  echo "ok  $1"
}
expect "REST reserve (new user)" '"status":"RESERVATION_STATUS_RESERVED"' "$(curl -s -X POST "$base/reserve" -H 'Content-Type: application/json' -d '{}')"
expect "REST reserve user_123" '"user_id":"user_123"' "$(curl -s -X POST "$base/reserve" -H 'Content-Type: application/json' -d '{"user_id": "user_123"}')"
expect "REST status" '"status":"RESERVATION_STATUS_RESERVED"' "$(curl -s "$base/status/user_123")"
expect "REST process_queue" '"promoted_count":0' "$(curl -s -X POST "$base/process_queue" -H 'X-Token: my-secret-token')"
expect "REST process_queue without token" '401' "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/process_queue")"
expect "REST health" '"redis_ok":true' "$(curl -s "$base/health")"
expect "web app" 'id="join-form"' "$(curl -s "$base/")"
expect "Connect JSON over HTTP/2" '"userId":"user_123"' "$(curl -s --http2-prior-knowledge -X POST "$base/ticketqueue.v1.TicketQueueService/GetStatus" -H 'content-type: application/json' -d '{"userId":"user_123"}')"
expect "gRPC, gRPC-web, Connect (examples/connect-client)" 'connect: ' "$("$node_bin" dist/examples/connect-client.js "$base")"
expect "@grpc/grpc-js (examples/grpc-js-client)" 'process_queue: promoted' "$("$node_bin" dist/examples/grpc-js-client.js "127.0.0.1:$port" my-secret-token)"
expect "tickets signed by libsodium (sodium-native loads)" '"library":"libsodium"' "$(cat "$tmp/service.log")"
expect "REST reset" '"cleared_reserved"' "$(curl -s -X POST "$base/admin/reset" -H 'X-Token: my-secret-token')"

kill -TERM "$svc_pid"
status=0
wait "$svc_pid" || status=$?
svc_pid=
[ "$status" -eq 0 ] || { echo "smoke FAILED: exit status $status after SIGTERM" >&2; cat "$tmp/service.log" >&2; exit 1; }
echo "ok  SIGTERM: clean exit"

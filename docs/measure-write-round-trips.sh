#!/usr/bin/env bash
# Counts the Redis round trips of one pet-shop write, as `MONITOR` shows them: the
# commands the service's own connection sent (not those its scripts ran, marked `lua`,
# nor the backplane's lease renewals and PINGs, which run every 250 ms whatever happens).
#
#   docs/measure-write-round-trips.sh <petshop binary> <strategy> [l1+l2|l2]
#
# Prints, per write (a happiness PATCH, a species-change PATCH, a create, a delete), the
# number of commands and their names. Needs redis-server, redis-cli and curl; uses
# two random loopback ports and an in-memory SQLite.
set -euo pipefail
bin=$1 strategy=$2 tiers=${3:-l1+l2}
rport=$((20000 + RANDOM % 10000)) hport=$((30000 + RANDOM % 10000))
dir=$(mktemp -d)
redis-server --port $rport --save '' --appendonly no --daemonize no >"$dir/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid ${spid:-} ${mpid:-} 2>/dev/null; rm -rf "$dir"' EXIT
sleep 0.3
DATABASE_URL='sqlite::memory:' BIND=127.0.0.1:$hport CACHE_TIERS=$tiers \
  CACHE_STRATEGY=$strategy REDIS_URL=redis://127.0.0.1:$rport RUST_LOG=warn \
  "$bin" >"$dir/petshop.log" 2>&1 &
spid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$hport/health" >/dev/null && break; sleep 0.1; done
api() { curl -fs -X "$1" "http://127.0.0.1:$hport$2" -H 'content-type: application/json' ${3:+-d "$3"}; }
new='{"name":"Rex","species":"dog","age":3,"happiness":50}'
id=$(api POST /pets "$new" | sed 's/.*"id":\([0-9]*\).*/\1/')
api GET "/pets/$id" >/dev/null
api PATCH "/pets/$id" '{"happiness":70}' >/dev/null # loads the scripts
count() { # label, then the request
  local label=$1; shift
  redis-cli -p $rport monitor >"$dir/monitor" & mpid=$!
  sleep 0.2
  api "$@" >"$dir/reply"
  sleep 0.2
  kill $mpid; wait $mpid 2>/dev/null || true
  grep -v '\[0 lua\]' "$dir/monitor" | grep -v '^OK' | grep -v ':leases"' | grep -v '"PING"' \
    | grep -v '"ZREM"' | awk '{print $4}' | tr -d '"' >"$dir/commands" || true
  printf '%-16s %s round trips: %s\n' "$label" "$(wc -l <"$dir/commands")" "$(paste -sd' ' "$dir/commands")"
}
echo "$strategy, $tiers:"
count "PATCH happiness" PATCH "/pets/$id" '{"happiness":71}'
count "PATCH species" PATCH "/pets/$id" '{"species":"cat"}'
count "POST (create)" POST /pets "$new"
new_id=$(sed 's/.*"id":\([0-9]*\).*/\1/' "$dir/reply")
count "DELETE" DELETE "/pets/$new_id"

#!/usr/bin/env bash
# Context switches a login costs during a login flood on SQLite, counted by `perf stat` on the
# service's process. Each switch can preempt a password hash on a small machine, so this is a
# steadier view of a login's overhead than its requests/s. See docs/benchmarks.md.
#
#   BIN=/path/to/users-api bench/login-switches.sh          # a 10 s flood of one account
#   BIN=… DURATION=20 bench/login-switches.sh
#
# Environment: BIN (a release binary; built when not given), DURATION (seconds, default 10,
# at most 120), PORT (default 18463). Needs perf (Debian's linux-perf) and wrk.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DURATION=${DURATION:-10}
PORT=${PORT:-18463}
PASSWORD='BenchPassw0rd!2026'
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 2 || DURATION > 120)); then
  echo "DURATION must be 2 to 120 seconds" >&2
  exit 2
fi
for tool in perf wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
export AUTH_RATE_PER_SECOND=0
# shellcheck source=bench/sqlite-service.sh
source "$here/sqlite-service.sh"
curl -fsS -X POST "http://127.0.0.1:$PORT/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"switches@bench.example\",\"password\":\"$PASSWORD\"}" >/dev/null

perf stat -e context-switches -p "$service_pid" -o "$work/stat.txt" -- sleep "$DURATION" >/dev/null 2>&1 &
stat_pid=$!
wrk -t2 -c32 -d"$((DURATION + 1))s" -s "$here/lua/login.lua" "http://127.0.0.1:$PORT/auth/login" \
  switches@bench.example "$PASSWORD" >"$work/wrk.txt"
wait "$stat_pid"

rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
switches=$(awk '/context-switches/ {gsub(",", "", $1); print $1}' "$work/stat.txt")
awk -v rps="$rps" -v sw="$switches" -v d="$DURATION" -v bin="$(basename "$BIN")" 'BEGIN {
  printf "%s: %.1f logins/s, %d context switches in %d s, %.1f a login\n", bin, rps, sw, d, sw / (rps * d)
}'

#!/usr/bin/env bash
# End-to-end check that a real Prometheus can scrape users-api and answer the seed dashboard's
# queries:
#   bash scripts/prometheus-check.sh
# Builds (or reuses) the debug binary, serves it on loopback with SQLite in a temporary folder,
# sends traffic (including requests that time out, so 5xx series exist), starts Prometheus on
# loopback scraping every second, and fails unless each query returns a non-empty vector.
# Installs Debian's prometheus package when it is missing. Everything is stopped and removed on
# exit. Takes about 15 seconds once the binary is built.
set -euo pipefail
cd "$(dirname "$0")/.."

QUERIES=(
  'rate(http_request_duration_seconds_count[1m])'
  'rate(http_request_duration_seconds_count{status=~"5.."}[1m])'
  'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[1m])) by (le))'
)

if ! command -v prometheus >/dev/null; then
  echo "prometheus-check: installing prometheus (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "--- users-api log (last 20 lines)" >&2; tail -n 20 "$work/service.log" >&2 || true
    echo "--- prometheus log (last 20 lines)" >&2; tail -n 20 "$work/prometheus.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

fail() { echo "prometheus-check: FAILED: $*" >&2; exit 1; }

# Wait up to $1 seconds for the command that follows to succeed.
wait_until() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- users-api ---------------------------------------------------------------------------------
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --bin users-api
# A private copy: another build sharing the target folder may replace the file meanwhile.
cp "$target/debug/users-api" "$work/users-api"

# One hash at a time and a one-second request timeout: the login burst below then produces
# genuine 503s, so the 5xx query has a series to find.
(cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 LOG_FORMAT=json \
  DATABASE_URL="sqlite://$work/users.db" DATA_DIR="$work/data" \
  HASH_CONCURRENCY=1 REQUEST_TIMEOUT_SECS=1 AUTH_RATE_PER_SECOND=0 \
  ./users-api serve >"$work/service.log" 2>&1) &
pids+=($!)
wait_until 30 grep -q '"users-api listening"' "$work/service.log" || fail "users-api did not start"
address=$(grep '"users-api listening"' "$work/service.log" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' | head -n1)
[ -n "$address" ] || fail "no address in the 'listening' log line"
base="http://$address"
echo "prometheus-check: users-api on $base"

# ---- Prometheus --------------------------------------------------------------------------------
prom_port=$(free_port)
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: users-api
    metrics_path: /metrics
    static_configs:
      - targets: ["$address"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prom_port"
wait_until 30 curl -fsS "$prom/-/ready" || fail "Prometheus did not become ready"
echo "prometheus-check: Prometheus on $prom"

# ---- traffic -----------------------------------------------------------------------------------
curl -fsS -o /dev/null -X POST "$base/auth/register" -H 'Content-Type: application/json' \
  -d '{"email": "check@example.com", "password": "check-password-123"}' || fail "registration"
login() { # login PASSWORD → prints the status
  curl -s -o /dev/null -w '%{http_code}\n' -X POST "$base/auth/login" \
    -d "username=check@example.com&password=$1"
}
[ "$(login check-password-123)" = 200 ] || fail "login"
[ "$(login wrong-password-123)" = 401 ] || fail "a wrong password was not refused"
curl -s -o /dev/null "$base/users/123"
curl -s -o /dev/null "$base/no/such/url"
export -f login
export base
statuses=$(seq 120 | xargs -P 120 -I{} bash -c 'login check-password-123')
echo "prometheus-check: login burst answered $(echo "$statuses" | sort | uniq -c | tr -s ' \n' ' ')"
echo "$statuses" | grep -q '^503$' || fail "the login burst produced no 5xx; the 5xx query would have nothing to show"

# ---- queries -----------------------------------------------------------------------------------
# Returns 0 when the query's result vector is non-empty; prints how many series it holds.
query_nonempty() {
  curl -fsS --get --data-urlencode "query=$1" "$prom/api/v1/query" | python3 -c '
import json, sys
body = json.load(sys.stdin)
result = body.get("data", {}).get("result", [])
print(len(result))
sys.exit(0 if body.get("status") == "success" and result else 1)'
}

wait_until 30 query_nonempty 'up{job="users-api"} == 1' || fail "Prometheus never scraped users-api"
for q in "${QUERIES[@]}"; do
  # rate() needs two samples in its window: a few scrapes after the traffic.
  if ! wait_until 30 query_nonempty "$q"; then
    fail "empty result for: $q"
  fi
  echo "prometheus-check: ok ($(query_nonempty "$q") series): $q"
done
echo "prometheus-check: OK"

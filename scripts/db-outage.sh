#!/usr/bin/env bash
# What the service does while its PostgreSQL is down, and after it comes back:
#   bash scripts/db-outage.sh
# Serves the debug binary on loopback against a database of its own on the local PostgreSQL
# (127.0.0.1:5432, user postgres, trust auth; sslmode=disable, so the pipelined reads of
# store::pg_direct run too) with DB_ACQUIRE_TIMEOUT_MS=500, keeps two clients
# registering users throughout, stops PostgreSQL for a few seconds and checks that
#   * /readyz answers 503 within a second, and other requests answer 503 quickly (never 500,
#     never hang: curl --max-time 3);
#   * once PostgreSQL is back, the same process recovers: /readyz 200, registrations succeed;
#   * every registration that was acknowledged with 201 is in the database.
# PostgreSQL is always started again on exit (other tests use it); the database is dropped.
# Takes about 20 seconds once the binary is built.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
PG_VERSION=$(ls /etc/postgresql | sort -V | tail -n1)
DB="users_outage_$$"
OUTAGE_SECS=4

work=$(mktemp -d)
pids=()
service_pid=""
pg() { pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main "$@"; }
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Whatever happened, PostgreSQL runs again when this script ends.
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg start || true
    for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  fi
  psql "$PG_URL/postgres" -qtAc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    echo "--- users-api log (last 20 lines)" >&2; tail -n 20 "$work/service.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "db-outage: FAILED: $*" >&2; exit 1; }

wait_until() { # wait_until SECONDS CMD...
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# status_and_time METHOD PATH [CURL-ARGS...] → prints "STATUS SECONDS"
status_and_time() {
  local method=$1 path=$2; shift 2
  curl -s -o /dev/null --max-time 3 -w '%{http_code} %{time_total}\n' -X "$method" "$base$path" "$@" || true
}

# ---- PostgreSQL and users-api ------------------------------------------------------------------
pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL is not running on 127.0.0.1:5432"
psql "$PG_URL/postgres" -qtAc "CREATE DATABASE $DB" >/dev/null

target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --bin users-api
cp "$target/debug/users-api" "$work/users-api"

(cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 LOG_FORMAT=json LOG_LEVEL=${DB_OUTAGE_LOG_LEVEL:-warn,users_api=info} \
  DATABASE_URL="$PG_URL/$DB?sslmode=disable" DATA_DIR="$work/data" DB_ACQUIRE_TIMEOUT_MS=500 \
  JWT_SECRET_KEY=db-outage-secret-0123456789abcdef012345 \
  ./users-api serve >"$work/service.log" 2>&1) &
service_pid=$!
pids+=("$service_pid")
wait_until 30 grep -q '"users-api listening"' "$work/service.log" || fail "users-api did not start"
address=$(grep '"users-api listening"' "$work/service.log" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' | head -n1)
base="http://$address"
echo "db-outage: users-api on $base, database $DB"

curl -fsS -o /dev/null -X POST "$base/auth/register" -H 'Content-Type: application/json' \
  -d '{"email": "outage@example.com", "password": "outage-password-1"}' || fail "registration"
token=$(curl -fsS -X POST "$base/auth/login" -d 'username=outage@example.com&password=outage-password-1' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

# ---- traffic -----------------------------------------------------------------------------------
# Each writer registers users one after another and logs "STATUS SECONDS EMAIL" per attempt.
writer() {
  local n=0 email result
  while :; do
    n=$((n + 1))
    email="w$1-$n@example.com"
    result=$(curl -s -o /dev/null --max-time 3 -w '%{http_code} %{time_total}' -X POST "$base/auth/register" \
      -H 'Content-Type: application/json' \
      -d "{\"email\": \"$email\", \"password\": \"outage-password-1\"}" || true)
    echo "$result $email" >>"$work/writer-$1.log"
    sleep 0.05
  done
}
writer 1 & pids+=($!)
writer 2 & pids+=($!)
sleep 2

# ---- outage ------------------------------------------------------------------------------------
echo "db-outage: stopping PostgreSQL $PG_VERSION"
pg stop -m fast
outage_start=$(wc -l <"$work/writer-1.log")

read -r code secs <<<"$(status_and_time GET /readyz)"
echo "db-outage: /readyz during the outage: $code in ${secs}s"
[ "$code" = 503 ] || fail "/readyz answered $code during the outage, not 503"
awk -v s="$secs" 'BEGIN { exit !(s < 1.0) }' || fail "/readyz took ${secs}s during the outage (limit 1s)"

check_503() { # check_503 LABEL METHOD PATH [CURL-ARGS...]
  local label=$1 code secs; shift
  read -r code secs <<<"$(status_and_time "$@")"
  echo "db-outage: $label during the outage: $code in ${secs}s"
  [ "$code" = 503 ] || fail "$label answered $code during the outage, not 503"
  awk -v s="$secs" 'BEGIN { exit !(s < 2.0) }' || fail "$label took ${secs}s during the outage (limit 2s)"
}
check_503 "GET /auth/me" GET /auth/me -H "Authorization: Bearer $token"
check_503 "GET /users/me" GET /users/me -H "Authorization: Bearer $token"
check_503 "POST /auth/login" POST /auth/login -d 'username=outage@example.com&password=outage-password-1'
check_503 "POST /auth/register" POST /auth/register -H 'Content-Type: application/json' \
  -d '{"email": "during@example.com", "password": "outage-password-1"}'
check_503 "POST /api/login (compat)" POST /api/login -H 'Content-Type: application/json' \
  -d '{"username": "outage@example.com", "password": "outage-password-1"}'
code=$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$base/healthz" || true)
[ "$code" = 200 ] || fail "/healthz answered $code during the outage (it does no I/O)"

sleep "$OUTAGE_SECS"
echo "db-outage: starting PostgreSQL again"
pg start
outage_end=$(wc -l <"$work/writer-1.log")

# ---- recovery, same process --------------------------------------------------------------------
ready() { [ "$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$base/readyz")" = 200 ]; }
wait_until 30 ready || fail "/readyz did not answer 200 within 30 s of PostgreSQL starting"
echo "db-outage: /readyz 200 again after PostgreSQL started"
kill -0 "$service_pid" 2>/dev/null || fail "the service process is gone"
code=$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' -X POST "$base/auth/register" \
  -H 'Content-Type: application/json' -d '{"email": "after@example.com", "password": "outage-password-1"}')
[ "$code" = 201 ] || fail "registration after recovery answered $code"
code=$(curl -s -o /dev/null --max-time 3 -w '%{http_code}' "$base/auth/me" -H "Authorization: Bearer $token")
[ "$code" = 200 ] || fail "the token from before the outage answered $code after recovery"
sleep 1.5 # let the writers register some more after the recovery

for pid in "${pids[@]:1}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
pids=("$service_pid")

# ---- what the writers saw ----------------------------------------------------------------------
cat "$work"/writer-*.log >"$work/all.log"
echo "db-outage: writers' answers: $(cut -d' ' -f1 "$work/all.log" | sort | uniq -c | tr -s ' \n' ' ')"
! grep -q '^5[0-9][0-9]' <(grep -v '^503 ' "$work/all.log") \
  || fail "some registrations answered a 5xx other than 503: $(grep '^5' "$work/all.log" | grep -v '^503 ' | head -n 3 | tr '\n' ';')"
! grep -q '^000 ' "$work/all.log" || fail "some registrations got no answer within 3 s"
slow=$(awk '$2 >= 2.0' "$work/all.log" | wc -l)
[ "$slow" -eq 0 ] || fail "$slow registrations took 2 s or more"
grep -q '^503 ' "$work/all.log" || fail "no writer saw a 503: the outage was not observed"
[ "$(sed -n "$((outage_end + 1)),\$p" "$work/writer-1.log" | grep -c '^201 ')" -gt 0 ] \
  || fail "writer 1 saw no 201 after the outage"
echo "db-outage: outage spanned writer-1 attempts $outage_start..$outage_end"

# ---- every acknowledged write is there ---------------------------------------------------------
awk '$1 == 201 { print $3 }' "$work/all.log" | sort >"$work/acknowledged"
psql "$PG_URL/$DB" -qtAc 'SELECT email FROM users' | sort >"$work/stored"
missing=$(comm -23 "$work/acknowledged" "$work/stored")
[ -z "$missing" ] || fail "acknowledged registrations missing from the database: $missing"
echo "db-outage: all $(wc -l <"$work/acknowledged") acknowledged registrations are in the database"
echo "db-outage: OK"

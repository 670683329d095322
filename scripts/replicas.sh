#!/usr/bin/env bash
# Three replicas of users-api behind nginx, sharing one PostgreSQL database:
#   bash scripts/replicas.sh
# Starts three instances of the debug binary on loopback (same JWT_SECRET_KEY, one fresh
# database on the local PostgreSQL at 127.0.0.1:5432) and nginx on a loopback port with a
# round-robin upstream (its own config and prefix in a temporary folder, not the system
# service; Debian's nginx-light is installed when nginx is missing). It shows, both through
# nginx and by addressing each replica directly, that
#   * a logout on replica 1 is honoured by replicas 2 and 3 (the access token gets 401);
#   * a role granted on replica 1 is seen by the others on the next request (403 → 200);
#   * a deactivation on replica 3 kills the user's token on every replica;
#   * failed logins are counted across replicas (see throttling_across_replicas).
# Processes and the database are removed on exit. Takes about 15 seconds once built.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
DB="users_replicas_$$"
ADMIN_EMAIL=replicas-admin@example.com
ADMIN_PASSWORD=replicas-admin-password-1
PASSWORD=replicas-password-1

if ! command -v nginx >/dev/null; then
  echo "replicas: installing nginx-light (Debian package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql "$PG_URL/postgres" -qtAc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    for i in 1 2 3; do
      echo "--- replica $i log (last 10 lines)" >&2; tail -n 10 "$work/replica-$i.log" >&2 || true
    done
    echo "--- nginx error log" >&2; tail -n 10 "$work/nginx/error.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "replicas: FAILED: $*" >&2; exit 1; }

wait_until() { # wait_until SECONDS CMD...
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

# ---- database and replicas ---------------------------------------------------------------------
pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL is not running on 127.0.0.1:5432"
psql "$PG_URL/postgres" -qtAc "CREATE DATABASE $DB" >/dev/null

target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --bin users-api
cp "$target/debug/users-api" "$work/users-api"

# start_replica N AUTO_MIGRATE → sets replica_N to its base URL
start_replica() {
  local n=$1 migrate=$2 address
  (cd "$work" && exec env -i PATH="$PATH" HOST=127.0.0.1 PORT=0 LOG_FORMAT=json \
    DATABASE_URL="$PG_URL/$DB?sslmode=disable" DATA_DIR="$work/data-$n" AUTO_MIGRATE="$migrate" \
    JWT_SECRET_KEY=replicas-shared-secret-0123456789abcdef0123 \
    ADMIN_EMAIL="$ADMIN_EMAIL" ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    ./users-api serve >"$work/replica-$n.log" 2>&1) &
  pids+=($!)
  wait_until 30 grep -q '"users-api listening"' "$work/replica-$n.log" || fail "replica $n did not start"
  # The shared checks below must hold for the pipelined lookups and the answers they keep.
  grep -q 'pipelined PostgreSQL reads are on' "$work/replica-$n.log" ||
    fail "replica $n runs without the pipelined lookups"
  address=$(grep '"users-api listening"' "$work/replica-$n.log" | sed -n 's/.*"address":"\([^"]*\)".*/\1/p' | head -n1)
  printf -v "replica_$n" 'http://%s' "$address"
  printf -v "address_$n" '%s' "$address"
}
# Replica 1 applies the migrations and creates the admin; the others only serve, as in
# Kubernetes (AUTO_MIGRATE=false, a Job migrates).
start_replica 1 true
start_replica 2 false
start_replica 3 false
replica_1=${replica_1:?} replica_2=${replica_2:?} replica_3=${replica_3:?}
replicas=("$replica_1" "$replica_2" "$replica_3")

# ---- nginx -------------------------------------------------------------------------------------
mkdir -p "$work/nginx"
lb_port=$(free_port)
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/nginx/client_body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream users_api {
    # Round robin (nginx's default).
    server ${address_1:?};
    server ${address_2:?};
    server ${address_3:?};
  }
  server {
    listen 127.0.0.1:$lb_port;
    location / {
      proxy_pass http://users_api;
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
EOF
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
lb="http://127.0.0.1:$lb_port"
wait_until 15 curl -fsS "$lb/healthz" || fail "nginx did not start"
echo "replicas: nginx on $lb → $replica_1 $replica_2 $replica_3"

# Round robin really spreads requests: each replica logs some of six /healthz through nginx.
for _ in 1 2 3 4 5 6; do curl -fsS -o /dev/null "$lb/healthz"; done
sleep 0.3
for i in 1 2 3; do
  grep -q '"route":"/healthz"' "$work/replica-$i.log" || fail "nginx sent no request to replica $i"
done

# ---- helpers -----------------------------------------------------------------------------------
# status METHOD URL TOKEN [JSON] → prints the status code
status() {
  local method=$1 url=$2 token=$3 data=${4:-}
  local args=(-s -o /dev/null --max-time 10 -w '%{http_code}' -X "$method" "$url")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' -d "$data")
  curl "${args[@]}"
}
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }
register() { # register EMAIL → prints the new user's id (through nginx)
  curl -fsS --max-time 10 -X POST "$lb/auth/register" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"$PASSWORD\"}" | json_field id
}
login() { # login BASE EMAIL PASSWORD → prints an access token
  curl -fsS --max-time 10 -X POST "$1/auth/login" --data-urlencode "username=$2" \
    --data-urlencode "password=$3" | json_field access_token
}
# expect STATUS LABEL METHOD PATH TOKEN [JSON]: on each replica directly, then 3 times
# through nginx (so the round robin reaches every replica).
expect_everywhere() {
  local want=$1 label=$2 method=$3 path=$4 token=$5 data=${6:-} got i
  for i in 1 2 3; do
    got=$(status "$method" "${replicas[$((i - 1))]}$path" "$token" "$data")
    [ "$got" = "$want" ] || fail "$label: replica $i answered $got, expected $want"
  done
  for i in 1 2 3; do
    got=$(status "$method" "$lb$path" "$token" "$data")
    [ "$got" = "$want" ] || fail "$label: nginx (request $i) answered $got, expected $want"
  done
  echo "replicas: ok: $label → $want on replicas 1, 2, 3 and 3× through nginx"
}

admin=$(login "$lb" "$ADMIN_EMAIL" "$ADMIN_PASSWORD") || fail "the bootstrap admin could not log in"

# ---- 1. logout on replica 1 ends the session everywhere ----------------------------------------
register logout@example.com >/dev/null
token=$(login "$replica_2" logout@example.com "$PASSWORD")
expect_everywhere 200 "token before logout" GET /auth/me "$token"
[ "$(status POST "$replica_1/auth/logout" "$token")" = 204 ] || fail "logout on replica 1"
expect_everywhere 401 "token after logout on replica 1" GET /auth/me "$token"

# ---- 2. a role granted on replica 1 counts on the next request everywhere ----------------------
user_id=$(register moderator@example.com)
token=$(login "$lb" moderator@example.com "$PASSWORD")
moderator_role=$(curl -fsS --max-time 10 "$replica_3/rbac/roles" -H "Authorization: Bearer $admin" \
  | python3 -c 'import json, sys; print(next(r["id"] for r in json.load(sys.stdin) if r["name"] == "moderator"))')
expect_everywhere 403 "GET /users/ before the grant" GET /users/ "$token"
got=$(status POST "$replica_1/rbac/users/$user_id/roles" "$admin" "{\"role_ids\": [$moderator_role]}")
[ "$got" = 200 ] || fail "granting moderator on replica 1 answered $got"
expect_everywhere 200 "GET /users/ after the grant on replica 1" GET /users/ "$token"

# ---- 3. a deactivation on replica 3 kills the token everywhere ---------------------------------
user_id=$(register deactivated@example.com)
token=$(login "$replica_1" deactivated@example.com "$PASSWORD")
expect_everywhere 200 "token before deactivation" GET /auth/me "$token"
got=$(status PUT "$replica_3/users/$user_id/deactivate" "$admin")
[ "$got" = 200 ] || fail "deactivating on replica 3 answered $got"
expect_everywhere 401 "token after deactivation on replica 3" GET /auth/me "$token"

# ---- 4. login throttling counts across replicas ------------------------------------------------
# TODO(throttling, issue 7): PLACEHOLDER for the engineer adding the database-stored login
# throttle. Until POST /auth/login answers 429, this only reports that it is not there (set
# REQUIRE_THROTTLING=1 to make that a failure). Once it is, it checks that failed logins for one
# account spread over the three replicas end in a 429 with Retry-After, i.e. the counter is
# shared; adjust MAX_ATTEMPTS to the configured limit.
throttling_across_replicas() {
  local max_attempts=${MAX_ATTEMPTS:-15} n code headers
  register throttled@example.com >/dev/null
  for n in $(seq 1 "$max_attempts"); do
    headers=$(curl -s -D - -o /dev/null --max-time 10 -X POST "${replicas[$((n % 3))]}/auth/login" \
      -d 'username=throttled@example.com&password=wrong-password-123')
    code=$(printf '%s' "$headers" | head -n1 | awk '{print $2}')
    case "$code" in
      401) ;;
      429)
        printf '%s' "$headers" | grep -qi '^retry-after: *[0-9]' || fail "a 429 without Retry-After"
        [ "$n" -gt 3 ] || fail "429 after only $n attempts"
        echo "replicas: ok: failed logins spread over 3 replicas answered 429 (with Retry-After) at attempt $n"
        return 0 ;;
      *) fail "failed login $n answered $code" ;;
    esac
  done
  [ "${REQUIRE_THROTTLING:-0}" != 1 ] || fail "no 429 after $max_attempts failed logins across replicas"
  echo "replicas: SKIPPED: throttling across replicas (no 429 after $max_attempts failed logins; not implemented yet)"
}
throttling_across_replicas

echo "replicas: OK"

#!/usr/bin/env bash
# Instructions a request costs in the service's own process, counted by valgrind's callgrind:
# the same figure for the same binary and requests whatever else the machine is doing, where
# wrk's requests/s on these machines moves by 15 % between runs. User space only (the kernel's
# share of a request, mostly loopback TCP, is not counted), and the SHA-256 of the JWT check
# runs callgrind's software path rather than the CPU's SHA instructions, so read it to compare
# two binaries, not as time. See docs/benchmarks.md.
#
#   bench/instructions.sh                          # GET /_bench/static and /auth/me, 3,000 each
#   BIN=/path/to/users-api ROUTES="/auth/me /users/1" REQUESTS=5000 bench/instructions.sh
#   BIN=… BACKEND=postgres ROUTES="login register" bench/instructions.sh
#
# `login` and `register` are POSTs that hash a password; for them the count leaves out the
# hashing threads (Argon2's 137 million instructions a hash would drown the rest) and gives
# what the other threads spend on a login or a registration: the work that a login flood takes
# from the hashes.
#
# Environment (all optional): BIN (a binary built with --features bench; built when not given),
# ROUTES (GET routes, asked with the admin's token, or `login` / `register`), REQUESTS (per GET
# route, default 3000), HASHING_REQUESTS (per `login` or `register`, default 20),
# PORT (default 18462), LOG_LEVEL (default info, as deployed), PROFILES (a folder to keep each
# route's callgrind output in, for callgrind_annotate; not kept by default), BACKEND (sqlite, the
# default, or postgres: a database users_api_instructions_<pid> on PG_URL, default
# postgres://postgres@127.0.0.1:5432, dropped at exit; the server's own work is not counted).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
ROUTES=${ROUTES:-"/_bench/static /auth/me"}
REQUESTS=${REQUESTS:-3000}
PORT=${PORT:-18462}
PASSWORD='BenchPassw0rd!2026'
BACKEND=${BACKEND:-sqlite}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
case $BACKEND in
  sqlite) ;;
  postgres)
    case $PG_URL in
      postgres://*@127.0.0.1:* | postgres://*@localhost:*) ;;
      *) echo "PG_URL must point at a loopback server" >&2; exit 2 ;;
    esac
    command -v psql >/dev/null || { echo "psql is required" >&2; exit 2; }
    ;;
  *) echo "BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac

if ! [[ $REQUESTS =~ ^[0-9]+$ ]] || ((REQUESTS < 100 || REQUESTS > 100000)); then
  echo "REQUESTS must be 100..100000" >&2
  exit 2
fi
HASHING_REQUESTS=${HASHING_REQUESTS:-20}
if ! [[ $HASHING_REQUESTS =~ ^[0-9]+$ ]] || ((HASHING_REQUESTS < 5 || HASHING_REQUESTS > 1000)); then
  echo "HASHING_REQUESTS must be 5..1000" >&2
  exit 2
fi
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y valgrind >/dev/null; }
for tool in curl python3 callgrind_control; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
if [[ -z ${BIN:-} ]]; then
  echo "building the release binary (cargo build --release --features bench)"
  (cd "$root" && cargo build --release --features bench --quiet)
  BIN=${CARGO_TARGET_DIR:-$root/target}/release/users-api
fi

work=$(mktemp -d /tmp/users-api-instructions.XXXXXX)
service=""
pg_db=""
cleanup() {
  [[ -n $service ]] && kill "$service" 2>/dev/null && wait "$service" 2>/dev/null
  if [[ -n $pg_db ]]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export JWT_SECRET_KEY=bench-signing-key-bench-signing-key-0123456789 AUTH_RATE_PER_SECOND=0
export APP_ENV=production LOG_FORMAT=json HOST=127.0.0.1 PORT DATA_DIR=$work/data
export LOG_LEVEL=${LOG_LEVEL:-info} DATABASE_URL=sqlite://$work/users.db
if [[ $BACKEND == postgres ]]; then
  pg_db=users_api_instructions_$$
  psql "$PG_URL/postgres" -qc "CREATE DATABASE $pg_db" >/dev/null
  # Loopback without TLS, as bench/run.sh runs it.
  export DATABASE_URL="$PG_URL/$pg_db?sslmode=disable"
fi
"$BIN" migrate up >/dev/null
printf '%s\n' "$PASSWORD" | "$BIN" create-admin --email admin@bench.example --username benchadmin >/dev/null

# Sends N GETs over 4 keep-alive connections in turn, one at a time, and checks each is a 200.
load() { # ROUTE N TOKEN
  PASSWORD=$PASSWORD python3 - "$PORT" "$@" <<'PY'
import json, os, socket, sys, urllib.parse
port, path, n, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
password = os.environ["PASSWORD"]
def post(route, content_type, body):
    return (f"POST /auth/{route} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
def request_for(k):
    if path == "login":
        form = urllib.parse.urlencode({"username": "admin@bench.example", "password": password})
        return post("login", "application/x-www-form-urlencoded", form)
    if path == "register":
        account = {"email": f"r{os.getpid()}-{k}@bench.example", "password": password}
        return post("register", "application/json", json.dumps(account))
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
bufs = [b""] * 4
for k in range(n):
    c, buf = conns[k % 4], bufs[k % 4]
    c.sendall(request_for(k))
    while b"\r\n\r\n" not in buf:
        buf += c.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += c.recv(65536)
    if not head.startswith(b"HTTP/1.1 20"):
        sys.exit(f"{path}: {head.splitlines()[0].decode()}")
    bufs[k % 4] = rest[length:]
PY
}

for route in $ROUTES; do
  out=$work/callgrind.out
  case $route in
    login | register) hashing=1 warmup=3 n=$HASHING_REQUESTS what="POST /auth/$route" ;;
    *) hashing=0 warmup=300 n=$REQUESTS what="GET $route" ;;
  esac
  # Instrumented only between the warm-up and the end of the measured requests; a thread a
  # file, so that the hashing threads can be left out.
  valgrind --tool=callgrind --callgrind-out-file="$out" --instr-atstart=no \
    --separate-threads=$( ((hashing)) && echo yes || echo no) \
    "$BIN" serve >"$work/service.log" 2>&1 &
  service=$!
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  token=$(curl -fs -X POST "http://127.0.0.1:$PORT/auth/login" \
    --data-urlencode username=admin@bench.example --data-urlencode "password=$PASSWORD" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  load "$route" "$warmup" "$token"
  callgrind_control -i on "$service" >/dev/null 2>&1
  load "$route" "$n" "$token"
  callgrind_control -i off "$service" >/dev/null 2>&1
  callgrind_control -d "$service" >/dev/null 2>&1
  kill "$service"
  wait "$service" 2>/dev/null || true
  service=""
  if ((hashing)); then
    # Each thread's files; a hashing thread's are the ones that ran Argon2's block filling.
    total=0
    for part in "$out"*; do
      grep -q 'fill_blocks' "$part" && continue
      total=$((total + $(awk '/^(summary|totals):/ {v = $2} END {print v + 0}' "$part")))
    done
    echo "$what: $((total / n)) instructions a request outside the hashing threads ($n requests, $BACKEND, $(basename "$BIN"))"
  else
    total=$(cat "$out"* | awk '/^(summary|totals):/ {if ($2 > max) max = $2} END {print max + 0}')
    echo "$what: $((total / n)) instructions a request ($n requests, $BACKEND, $(basename "$BIN"))"
  fi
  if [[ -n ${PROFILES:-} ]]; then
    mkdir -p "$PROFILES"
    name=$(echo "$route" | tr -c 'A-Za-z0-9\n' _)
    for part in "$out"*; do cp "$part" "$PROFILES/callgrind$name${part#"$out"}"; done
  fi
  rm -f "$out"*
done

#!/usr/bin/env bash
# Load benchmark of users-api: builds the release binary (with the `bench` feature, which adds
# the /_bench routes and nothing else), seeds a fresh database per backend with 100k users,
# starts the service on loopback and measures each scenario with wrk. See docs/benchmarks.md.
#
#   bench/run.sh                       # everything, SQLite and PostgreSQL, 15 s per scenario
#   DURATION=5 CONNECTIONS=16 BACKENDS=sqlite bench/run.sh    # a quick run
#
# Environment (all optional):
#   DURATION      seconds per scenario (default 15, at most 120)
#   CONNECTIONS   wrk connections (default 32);  THREADS  wrk threads (default 2)
#   BACKENDS      "sqlite postgres" (default)
#   USERS         users seeded (default 100000)
#   PG_URL        PostgreSQL server (default postgres://postgres@127.0.0.1:5432); a database
#                 users_api_bench_<pid> is created there and dropped at exit
#   BIN           use this binary instead of building one (it needs the `bench` feature)
#   LABEL         name of this run in the results (default "current")
#   OUT           results folder (default bench/results)
#   HASH_WINDOW   seconds of hashing on every thread before and after each scenario that
#                 hashes, for the limit as a rate (default 5, at most 20)
#   SCENARIOS     subset to run, e.g. "ceiling read_user" (default all)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-"sqlite postgres"}
USERS=${USERS:-100000}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
LABEL=${LABEL:-current}
OUT=${OUT:-$here/results}
HASH_WINDOW=${HASH_WINDOW:-5}
SCENARIOS=${SCENARIOS:-"ceiling read_user me search refresh login register healthz_login"}
PORT=${PORT:-18461}
HOST=127.0.0.1
PASSWORD='BenchPassw0rd!2026'
ADMIN=admin@bench.example

# Bounded: a typo must not leave a load generator running for hours.
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 120)); then
  echo "DURATION must be 1..120 seconds" >&2
  exit 2
fi
if ! [[ $HASH_WINDOW =~ ^[0-9]+$ ]] || ((HASH_WINDOW < 1 || HASH_WINDOW > 20)); then
  echo "HASH_WINDOW must be 1..20 seconds" >&2
  exit 2
fi
case $PG_URL in
  postgres://*@127.0.0.1:* | postgres://*@localhost:* | postgresql://*@127.0.0.1:* | postgresql://*@localhost:*) ;;
  *) echo "PG_URL must point at a loopback server" >&2; exit 2 ;;
esac

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y wrk >/dev/null; }
for tool in curl sqlite3 psql python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done

work=$(mktemp -d /tmp/users-api-bench.XXXXXX)
pids=()
pg_db=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $pg_db ]]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${BIN:-} ]]; then
  echo "building the release binary (cargo build --release --features bench)"
  (cd "$root" && cargo build --release --features bench --quiet)
  BIN=${CARGO_TARGET_DIR:-$root/target}/release/users-api
fi

mkdir -p "$OUT"
results=$OUT/$LABEL.tsv
echo -e "label\tbackend\tscenario\trps\tp50_ms\tp99_ms\terrors\trequests\tpeak_rss_mib" >"$results"
extras=$OUT/$LABEL.extra.tsv
echo -e "label\tbackend\tmetric\tvalue" >"$extras"
extra() { echo -e "$LABEL\t$1\t$2\t$3" >>"$extras"; echo "  $2 = $3"; }

export JWT_SECRET_KEY=bench-signing-key-bench-signing-key-0123456789
# One address sends every request here: the per-client request-rate shield (docs/security.md)
# would refuse the floods this script measures. The login throttle stays on (its queries are
# part of a real login); every benchmark login succeeds, so it never refuses one.
export AUTH_RATE_PER_SECOND=0
# Configured as deployed (deploy/k8s, deploy/compose): production, JSON logs at info.
export APP_ENV=production LOG_FORMAT=json HOST PORT DATA_DIR=$work/data LOG_LEVEL=${LOG_LEVEL:-info}

rss_kib() { # PID: its VmRSS in KiB (0 once it has gone), with shell builtins only
  local key value _
  while read -r key value _; do
    [[ $key == VmRSS: ]] && { echo "$value"; return; }
  done <"/proc/$1/status" 2>/dev/null
  echo 0
}

# Samples the service's resident memory every 100 ms into a file until killed. Builtins only:
# an `awk` and a `sleep` ten times a second cost about 2 % of this machine's CPU during a
# flood, taken from the service being measured. `read -t` on a pipe nobody writes is the sleep.
sample_rss() {
  local pid=$1 file=$2 tick _
  exec {tick}<> <(:)
  while [[ -e /proc/$pid/status ]]; do
    rss_kib "$pid" >>"$file"
    read -r -t 0.1 -u "$tick" _ || true
  done
}

start_service() {
  "$BIN" serve >>"$work/service.log" 2>&1 &
  service_pid=$!
  pids+=("$service_pid")
  for _ in $(seq 1 300); do
    curl -fs "http://$HOST:$PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the service did not become ready; log:" >&2
  tail -20 "$work/service.log" >&2
  exit 1
}

stop_service() {
  kill "$service_pid" 2>/dev/null || true
  wait "$service_pid" 2>/dev/null || true
}

# run_wrk NAME LUA DURATION CONNS THREADS PATH [ARGS...]: prints the RESULT line.
run_wrk() {
  local name=$1 lua=$2 dur=$3 conns=$4 threads=$5 path=$6
  shift 6
  cat "$here/lua/$lua" "$here/lua/report.lua" >"$work/$name.lua"
  wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 10s -s "$work/$name.lua" \
    "http://$HOST:$PORT$path" -- "$@" >"$work/$name.out" 2>&1 || true
  grep '^RESULT' "$work/$name.out" || { echo "RESULT rps=0 p50_ms=0 p99_ms=0 errors=-1 requests=0"; cat "$work/$name.out" >&2; }
}

record() { # BACKEND SCENARIO RESULT_LINE RSS_FILE
  local rss
  rss=$(sort -n "$4" | tail -1)
  python3 - "$LABEL" "$1" "$2" "$3" "${rss:-0}" >>"$results" <<'PY'
import sys
label, backend, scenario, line, rss = sys.argv[1:]
kv = dict(p.split("=") for p in line.split()[1:])
print("\t".join([label, backend, scenario, kv["rps"], kv["p50_ms"], kv["p99_ms"], kv["errors"],
                 kv["requests"], f"{int(rss) / 1024:.1f}"]))
PY
  tail -1 "$results" | awk -F'\t' '{printf "  %-14s %10s req/s  p50 %8s ms  p99 %8s ms  errors %s  peak RSS %s MiB\n", $3, $4, $5, $6, $7, $9}'
}

# CPU time the service's password hashing threads (argon2-*) have used, in clock ticks.
hash_ticks() { # PID
  local total=0 task comm stat
  for task in /proc/"$1"/task/*; do
    read -r comm <"$task/comm" 2>/dev/null || continue
    [[ $comm == argon2-* ]] || continue
    read -ra stat <"$task/stat" 2>/dev/null || continue
    ((total += stat[13] + stat[14])) # utime, stime
  done
  echo "$total"
}

# The machine's steal time so far (CPU its hypervisor gave to others), in clock ticks.
steal_ticks() {
  local cpu user nice system idle iowait irq softirq steal rest
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  echo "$steal"
}

# 100 × TICKS (clock ticks of CPU time) over what the machine's cores had since STARTED
# (`date +%s.%N`): a share of the whole machine, in per cent with one decimal.
machine_pct() { # TICKS STARTED
  echo "100 * $1 / ($(getconf CLK_TCK) * $(nproc) * ($(date +%s.%N) - $2))" | bc -l | xargs printf '%.1f'
}

# Runs COMMAND and records, under NAME, the share of the machine's CPU that its hypervisor
# took meanwhile (steal): time no process on the machine had, which slows every figure the
# command measures. bench/report.py does not judge a goal on a scenario run under more than
# a little of it (decision 106).
steal_share() { # BACKEND NAME COMMAND...
  local backend=$1 name=$2 steal started
  shift 2
  steal=$(steal_ticks)
  started=$(date +%s.%N)
  "$@"
  extra "$backend" "${name}_steal_pct" "$(machine_pct "$(($(steal_ticks) - steal))" "$started")"
}

# Runs COMMAND (through steal_share) and records, under NAME, the share of the machine's CPU
# (all cores) that the service's hashing threads had meanwhile: read in the same seconds as
# the load, it does not move with the machine's speed as the hash-bound limit's timings do,
# and it bounds what any login or registration can reach against that limit
# (docs/benchmarks.md).
hashing_share() { # BACKEND NAME COMMAND...
  local backend=$1 name=$2 ticks started
  shift 2
  ticks=$(hash_ticks "$service_pid")
  started=$(date +%s.%N)
  steal_share "$backend" "$name" "$@"
  extra "$backend" "${name}_hashing_cpu_pct" "$(machine_pct "$(($(hash_ticks "$service_pid") - ticks))" "$started")"
}

scenario() { # BACKEND NAME LUA PATH [ARGS...]
  local backend=$1 name=$2 lua=$3 path=$4
  shift 4
  local rss=$work/$name.rss
  : >"$rss"
  sample_rss "$service_pid" "$rss" &
  local sampler=$!
  pids+=("$sampler")
  local line
  line=$(run_wrk "$name" "$lua" "$DURATION" "$CONNECTIONS" "$THREADS" "$path" "$@")
  kill "$sampler" 2>/dev/null || true
  record "$backend" "$name" "$line" "$rss"
}

wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

login() { # EMAIL -> JSON
  curl -fs -X POST "http://$HOST:$PORT/auth/login" \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    --data-urlencode "username=$1" --data-urlencode "password=$PASSWORD"
}

seed() { # BACKEND
  local backend=$1
  DATABASE_URL=$db_url "$BIN" migrate up >/dev/null
  printf '%s\n' "$PASSWORD" | DATABASE_URL=$db_url "$BIN" create-admin --email "$ADMIN" --username benchadmin >/dev/null
  local hash
  if [[ $backend == sqlite ]]; then
    hash=$(sqlite3 "$work/users.db" "SELECT password_hash FROM users WHERE email_lower = '$ADMIN'")
  else
    hash=$(psql "$db_url" -Atc "SELECT password_hash FROM users WHERE email_lower = '$ADMIN'")
  fi
  # A UserVault (Flask) database of USERS accounts sharing one Argon2id hash: nothing is hashed
  # 100k times, and the import below is the one users-api offers for UserVault.
  local source=$work/uservault.db
  if [[ ! -f $source ]]; then
    sqlite3 "$source" <<SQL
CREATE TABLE user (id INTEGER PRIMARY KEY, username VARCHAR(80) UNIQUE NOT NULL,
                   email VARCHAR(120) UNIQUE NOT NULL, password_hash VARCHAR(256));
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $USERS)
INSERT INTO user SELECT i, 'user' || i, 'user' || i || '@bench.example', '$hash' FROM n;
SQL
  fi
  local started ended
  started=$(date +%s.%N)
  DATABASE_URL=$db_url "$BIN" import --from "sqlite://$source" --format uservault >"$work/import.log" 2>&1
  ended=$(date +%s.%N)
  extra "$backend" "import_${USERS}_users_s" "$(echo "$ended - $started" | bc -l | xargs printf '%.2f')"
}

# Cold start: exec to the first 200 from /readyz, polled every millisecond over a raw socket.
cold_start() { # BACKEND
  python3 - "$BIN" "$HOST" "$PORT" <<'PY'
import socket, subprocess, sys, time
binary, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(5):
    started = time.monotonic()
    proc = subprocess.Popen([binary, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if time.monotonic() - started > 10:
                raise SystemExit("not ready after 10 s")
            try:
                with socket.create_connection((host, port), timeout=1) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        times.append((time.monotonic() - started) * 1000)
                        break
            except OSError:
                pass
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait()
times.sort()
print(f"{times[len(times) // 2]:.0f}")
PY
}

# Times 20 Argon2id hashes three ways: as lone requests' hashes run (each maps its own memory),
# back to back on one hashing thread while the others idle (memory kept), and back to back on
# every hashing thread at once, as a login flood runs them. hash_bound_rps = cores ÷ the median
# of the last: what the cores can hash together (decision 85). The one-core figure, cores ÷ the
# quicker of the first two, is recorded beside it as hash_bound_one_core_rps; it overstates
# what the cores can do at once wherever they share a cache or memory bandwidth. Called at
# start-up and again right before and right after each scenario that hashes, so that each is
# read against the machine's speed around it (hash_bracketed). Binaries from before a timing
# answer only the older ones; without the all-threads timing the one-core figure stands in
# for it. Leaves the two timings in bound_all_us and bound_one_us.
hash_bound() { # BACKEND [SCENARIO [before|after]]
  local suffix=${2:+_${3:-before}_$2} hash_us reused_us all_us
  read -r hash_us reused_us all_us < <(curl -fs "http://$HOST:$PORT/_bench/argon2?n=20" | python3 -c "
import json, sys
t = json.load(sys.stdin)
def median(key):
    v = sorted(t.get(key, t['hash_us']))
    return v[len(v) // 2]
one_core = min(median('hash_us'), median('hash_reused_us'))
print(median('hash_us'), median('hash_reused_us'), median('hash_all_threads_us') if 'hash_all_threads_us' in t else one_core)")
  extra "$1" "argon2_hash_ms$suffix" "$(echo "$hash_us / 1000" | bc -l | xargs printf '%.1f')"
  extra "$1" "argon2_hash_reused_ms$suffix" "$(echo "$reused_us / 1000" | bc -l | xargs printf '%.1f')"
  extra "$1" "argon2_hash_all_threads_ms$suffix" "$(echo "$all_us / 1000" | bc -l | xargs printf '%.1f')"
  ((reused_us < hash_us)) && hash_us=$reused_us
  bound_all_us=$all_us
  bound_one_us=$hash_us
  extra "$1" "hash_bound_rps$suffix" "$(echo "$(nproc) * 1000000 / $all_us" | bc -l | xargs printf '%.1f')"
  extra "$1" "hash_bound_one_core_rps$suffix" "$(echo "$(nproc) * 1000000 / $hash_us" | bc -l | xargs printf '%.1f')"
}

# Hashes on every hashing thread at once for HASH_WINDOW seconds and records the hashes per
# second they did together: the hash-bound limit as a rate averaged over seconds, where
# hash_bound's median of 20 hashes samples well under one. Leaves it in rate_rps, empty for a
# binary from before decision 104, which has no such route (nothing is recorded then).
hash_rate() { # BACKEND SCENARIO before|after
  local answer
  rate_rps=
  answer=$(curl -fs "http://$HOST:$PORT/_bench/argon2/rate?ms=$((HASH_WINDOW * 1000))") || return 0
  rate_rps=$(python3 -c "import json, sys; print(f\"{json.load(sys.stdin)['per_second']:.1f}\")" <<<"$answer")
  extra "$1" "hash_rate_rps_$3_$2" "$rate_rps"
}

# Runs COMMAND between two timings of the hash, each recorded under NAME, and prints
# SCENARIO's requests/s (recorded by COMMAND) as a share of the hash-bound limit over it:
# cores ÷ the quicker of the two timings, before and after (decision 87). One timing takes a
# second or less, and the machine's hashing speed has moved by up to two thirds between two of
# them in one run; what slows a timing is the rest of the machine, never the hash, so the
# quicker one is the nearer to what the cores can do, and it is the stricter limit. The same
# for the one-core figure. Between those timings and the flood, HASH_WINDOW seconds of hashing
# on every thread before and after (hash_rate); SCENARIO's requests/s is also printed as a
# share of the mean of those two rates (docs/benchmarks.md, "The limit over seconds").
hash_bracketed() { # BACKEND NAME SCENARIO COMMAND...
  local backend=$1 name=$2 measured=$3 all_us one_us rps bound one_core rate_before
  shift 3
  hash_bound "$backend" "$name"
  all_us=$bound_all_us
  one_us=$bound_one_us
  hash_rate "$backend" "$name" before
  rate_before=$rate_rps
  "$@"
  hash_rate "$backend" "$name" after
  hash_bound "$backend" "$name" after
  ((bound_all_us < all_us)) && all_us=$bound_all_us
  ((bound_one_us < one_us)) && one_us=$bound_one_us
  rps=$(awk -F'\t' -v b="$backend" -v s="$measured" '$2 == b && $3 == s {r = $4} END {print r + 0}' "$results")
  bound=$(echo "$(nproc) * 1000000 / $all_us" | bc -l | xargs printf '%.1f')
  one_core=$(echo "$(nproc) * 1000000 / $one_us" | bc -l | xargs printf '%.1f')
  extra "$backend" "hash_bound_rps_around_$name" "$bound"
  extra "$backend" "${measured}_of_hash_bound_pct" "$(echo "100 * $rps / $bound" | bc -l | xargs printf '%.0f')"
  extra "$backend" "${measured}_of_one_core_bound_pct" "$(echo "100 * $rps / $one_core" | bc -l | xargs printf '%.0f')"
  if [[ -n $rate_before && -n $rate_rps ]]; then
    extra "$backend" "${measured}_of_hash_rate_pct" "$(echo "200 * $rps / ($rate_before + $rate_rps)" | bc -l | xargs printf '%.0f')"
  fi
}

# Two load generators at once: a login flood at full concurrency, and a small closed-loop
# probe of /healthz (1 thread, 4 connections) that starts 2 s later and ends 2 s earlier.
healthz_during_login_flood() { # BACKEND
  local rss=$work/healthz.rss sampler flood line
  : >"$rss"
  sample_rss "$service_pid" "$rss" &
  sampler=$!
  pids+=("$sampler")
  run_wrk login_flood login.lua "$DURATION" "$CONNECTIONS" "$THREADS" /auth/login \
    user3@bench.example "$PASSWORD" >"$work/login_flood.result" &
  flood=$!
  pids+=("$flood")
  sleep 2
  line=$(run_wrk healthz get_auth.lua "$((DURATION > 5 ? DURATION - 4 : 1))" 4 1 /healthz none)
  wait "$flood" || true
  kill "$sampler" 2>/dev/null || true
  record "$1" healthz_during_login "$line" "$rss"
  record "$1" login_during_probe "$(cat "$work/login_flood.result")" "$rss"
}

cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $cpu_model"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, label $LABEL, binary $BIN"

for backend in $BACKENDS; do
  echo "== $backend"
  case $backend in
    sqlite) db_url="sqlite://$work/users.db" ;;
    postgres)
      pg_db=users_api_bench_$$
      psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
      psql "$PG_URL/postgres" -qc "CREATE DATABASE $pg_db" >/dev/null
      # Loopback: no TLS, as for a database beside the service (sqlx would otherwise
      # negotiate TLS with a server that offers it, at a cost on both sides of each query).
      db_url="$PG_URL/$pg_db?sslmode=disable"
      ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  export DATABASE_URL=$db_url
  seed "$backend"
  if [[ $backend == sqlite ]]; then
    extra "$backend" cold_start_ms "$(cold_start "$backend")"
  fi
  start_service
  sleep 1
  extra "$backend" rss_at_rest_mib "$(echo "$(rss_kib "$service_pid") / 1024" | bc -l | xargs printf '%.1f')"
  hash_bound "$backend"

  admin_token=$(login "$ADMIN" | json_field access_token)
  target_id=$((USERS / 2))

  wants ceiling && steal_share "$backend" ceiling scenario "$backend" ceiling get_auth.lua /_bench/static "$admin_token"
  wants read_user && steal_share "$backend" read_user scenario "$backend" read_user get_auth.lua "/users/$target_id" "$admin_token"
  wants me && steal_share "$backend" me scenario "$backend" me get_auth.lua /auth/me "$admin_token"
  wants search && steal_share "$backend" search scenario "$backend" search search.lua / "$admin_token" 20
  if wants refresh; then
    : >"$work/refresh-tokens"
    for _ in $(seq 1 $((CONNECTIONS + 8))); do
      login user1@bench.example | json_field refresh_token >>"$work/refresh-tokens"
    done
    steal_share "$backend" refresh scenario "$backend" refresh refresh.lua /auth/refresh "$work/refresh-tokens" "$THREADS"
  fi
  wants login && hash_bracketed "$backend" login login hashing_share "$backend" login \
    scenario "$backend" login login.lua /auth/login user2@bench.example "$PASSWORD"
  wants register && hash_bracketed "$backend" register register hashing_share "$backend" register \
    scenario "$backend" register register.lua /auth/register "$LABEL$$" "$PASSWORD"
  wants healthz_login && hash_bracketed "$backend" healthz_login login_during_probe \
    hashing_share "$backend" healthz_login healthz_during_login_flood "$backend"
  extra "$backend" rss_after_load_mib "$(echo "$(rss_kib "$service_pid") / 1024" | bc -l | xargs printf '%.1f')"
  stop_service
  if [[ $backend == postgres ]]; then
    psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
    pg_db=""
  fi
  rm -f "$work"/users.db*
done

python3 "$here/report.py" "$OUT"
echo "results: $results, $extras; chart, table and goals: $OUT/chart.svg, $OUT/table.md, $OUT/goals.md"

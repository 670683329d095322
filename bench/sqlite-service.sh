# Sourced by the bench scripts that need one service on a fresh SQLite file, configured as
# deployed (production, JSON logs at info): builds the release binary when BIN is not given
# (with the cargo features in BUILD_FEATURES, if any), starts it on 127.0.0.1:$PORT, waits for
# /readyz, and stops it and removes its files at exit. Leaves BIN, work (a scratch folder) and
# service_pid set. The caller sets `root` (the repository) and PORT, and exports anything else
# the service should see (AUTH_RATE_PER_SECOND, say) before sourcing this.

if [[ -z ${BIN:-} ]]; then
  (cd "$root" && cargo build --release ${BUILD_FEATURES:+--features "$BUILD_FEATURES"} --quiet)
  BIN=${CARGO_TARGET_DIR:-$root/target}/release/users-api
fi

work=$(mktemp -d)
service_pid=
cleanup() {
  [[ -n $service_pid ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export JWT_SECRET_KEY=bench-signing-key-bench-signing-key-0123456789
export APP_ENV=production LOG_FORMAT=json LOG_LEVEL=info HOST=127.0.0.1 PORT DATA_DIR=$work/data
export DATABASE_URL=sqlite://$work/users.db
"$BIN" migrate up >/dev/null
"$BIN" serve >"$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.05
done

#!/usr/bin/env bash
# The two measures of the hash-bound limit side by side on an idle service (decision 104): the
# timing bench/run.sh has taken since decision 85 (cores ÷ the median of 20 hashes on every
# hashing thread at once, GET /_bench/argon2) and the rate over a window (hashes per second of
# every thread hashing back to back for WINDOW seconds, GET /_bench/argon2/rate), in PAIRS
# alternating pairs. Prints each pair, then each measure's lowest, highest, mean and standard
# deviation: how far a single reading of each strays on this machine. See docs/benchmarks.md.
#
#   BIN=/path/to/users-api bench/hash-limit.sh            # 12 pairs, 5 s windows
#   BIN=… PAIRS=20 WINDOW=10 bench/hash-limit.sh
#
# Environment: BIN (a release binary with the `bench` feature; built when not given), PAIRS
# (default 12, at most 100), WINDOW (seconds, default 5, at most 20), PORT (default 18464).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
PAIRS=${PAIRS:-12}
WINDOW=${WINDOW:-5}
PORT=${PORT:-18464}
if ! [[ $PAIRS =~ ^[0-9]+$ ]] || ((PAIRS < 2 || PAIRS > 100)); then
  echo "PAIRS must be 2 to 100" >&2
  exit 2
fi
if ! [[ $WINDOW =~ ^[0-9]+$ ]] || ((WINDOW < 1 || WINDOW > 20)); then
  echo "WINDOW must be 1 to 20 seconds" >&2
  exit 2
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
BUILD_FEATURES=bench
# shellcheck source=bench/sqlite-service.sh
source "$here/sqlite-service.sh"
curl -fs "http://127.0.0.1:$PORT/_bench/argon2/rate?ms=100" >/dev/null ||
  { echo "$BIN does not answer /_bench/argon2/rate (built without --features bench, or before decision 104)" >&2; exit 2; }

cores=$(nproc)
echo "timing (hashes/s)  rate over ${WINDOW} s (hashes/s)"
for _ in $(seq 1 "$PAIRS"); do
  timing=$(curl -fs "http://127.0.0.1:$PORT/_bench/argon2?n=20" | python3 -c "
import json, sys
t = sorted(json.load(sys.stdin)['hash_all_threads_us'])
print(f'{$cores * 1e6 / t[len(t) // 2]:.1f}')")
  rate=$(curl -fs "http://127.0.0.1:$PORT/_bench/argon2/rate?ms=$((WINDOW * 1000))" |
    python3 -c "import json, sys; print(f\"{json.load(sys.stdin)['per_second']:.1f}\")")
  echo "$timing $rate" | tee -a "$work/pairs"
done
python3 - "$work/pairs" <<'PY'
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
for name, values in (("timing", [p[0] for p in pairs]), ("rate", [p[1] for p in pairs])):
    mean = statistics.mean(values)
    print(f"{name}: lowest {min(values):.1f}, highest {max(values):.1f}, mean {mean:.1f}, "
          f"standard deviation {100 * statistics.stdev(values) / mean:.1f} % of the mean")
PY

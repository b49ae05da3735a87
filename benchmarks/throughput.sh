#!/usr/bin/env bash
# Whole-server throughput on loopback: gunicorn serving the apps of benchmarks/throughput_app.py,
# loaded by wrk. Every server runs for the whole script and the rows take turns, ROUNDS times, so load from
# other processes spreads over all rows; the figures are medians over the rounds.
#
#   bash benchmarks/throughput.sh                          # 5 rows x 3 rounds x 5 s
#   DURATION=10 ROUNDS=5 WORKERS=4 bash benchmarks/throughput.sh
#
# Workers are gunicorn's default sync workers (a connection per request). gthread with keep-alive
# (WORKER_CLASS=gthread) swings between about 2,000 and 7,000 req/s for the same plain app from one run to the
# next on a 2-core machine, which drowns every difference between rows; sync stays within a few percent.
#
# Needs wrk (Debian: apt-get install -y wrk), gunicorn and curl. wrk and gunicorn share the machine's cores, so
# the figures compare rows of one run; they are not a capacity plan.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-$(nproc)}
WORKER_CLASS=${WORKER_CLASS:-sync}
THREADS=${THREADS:-4}
worker_args=(--worker-class "$WORKER_CLASS")
# gunicorn turns a sync worker with --threads into gthread: pass threads only when asked for gthread.
[ "$WORKER_CLASS" = gthread ] && worker_args+=(--threads "$THREADS")
CONNECTIONS=${CONNECTIONS:-16}

for tool in wrk gunicorn curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (wrk: apt-get install -y wrk)" >&2; exit 1; }
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A test issuer's public key and one token valid for an hour, from the project's own test kit.
PYTHONPATH=$ROOT python3 - "$work" <<'PY'
import sys
from pathlib import Path
from flask_clerk_security.testing import ClerkTestIssuer
work = Path(sys.argv[1])
issuer = ClerkTestIssuer()
(work / "key.pem").write_text(issuer.public_pem)
(work / "token").write_text(issuer.session_token(azp="http://localhost:5000", lifetime=3600))
PY
auth="Authorization: Bearer $(cat "$work/token")"
# As behind a TLS-terminating proxy on loopback (gunicorn trusts 127.0.0.1): no HTTP->HTTPS redirects.
proto="X-Forwarded-Proto: https"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

declare -A port
serve() {  # serve NAME APP [ENV=VALUE ...]: gunicorn on a free loopback port, up and warm
  local name=$1 app=$2; shift 2
  port[$name]=$(free_port)
  env "$@" BENCH_JWT_KEY_FILE="$work/key.pem" PYTHONPATH="$ROOT" \
    gunicorn --bind "127.0.0.1:${port[$name]}" --workers "$WORKERS" "${worker_args[@]}" \
    --log-level warning "benchmarks.throughput_app:$app" &
  pids+=($!)
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://127.0.0.1:${port[$name]}/"; then
      wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:${port[$name]}/" >/dev/null
      return 0
    fi
    sleep 0.1
  done
  echo "gunicorn did not start for $app" >&2
  exit 1
}

labels=() servers=() paths=() headers=()
row() {  # row LABEL SERVER PATH [HEADER]
  labels+=("$1") servers+=("$2") paths+=("$3") headers+=("${4:-}")
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "$proto" ${4:+-H "$4"} "http://127.0.0.1:${port[$2]}$3")
  [ "$status" = 200 ] || { echo "$1: expected 200, got $status" >&2; exit 1; }
}

serve plain plain
serve clerk clerk
serve nocache clerk CLERK_TOKEN_CACHE_SIZE=0
row "plain Flask route" plain /api/me
row "public route, ClerkSecurity app" clerk /api/public
row "protected route, repeated token (cache hit)" clerk /api/me "$auth"
row "protected route, cache off (every request verifies)" nocache /api/me "$auth"
sdk_row=""
if PYTHONPATH=$ROOT python3 -c "import clerk_backend_api" 2>/dev/null; then
  serve sdk sdk
  row "clerk-backend-api authenticate_request" sdk /api/me "$auth"
else
  sdk_row="skipped: pip install .[bench]"
fi

for round in $(seq "$ROUNDS"); do
  for i in "${!labels[@]}"; do
    args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$proto")
    [ -n "${headers[$i]}" ] && args+=(-H "${headers[$i]}")
    out=$(wrk "${args[@]}" "http://127.0.0.1:${port[${servers[$i]}]}${paths[$i]}")
    if grep -q "Non-2xx" <<<"$out"; then echo "${labels[$i]}: non-2xx answers" >&2; exit 1; fi
    awk -v row="$i" '/^Requests\/sec/ {rps=$2} $1 == "50%" {p50=$2} $1 == "99%" {p99=$2}
      END {print row, rps, p50, p99}' <<<"$out" >>"$work/results"
  done
done

echo "gunicorn $WORKER_CLASS: $WORKERS workers$([ "$WORKER_CLASS" = gthread ] && echo " x $THREADS threads"); wrk: 1 thread, $CONNECTIONS connections;" \
  "$ROUNDS rounds x ${DURATION}s per row, rows interleaved; medians over the rounds"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(python3 --version)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %10s %9s %9s\n' "row" "req/s" "p50" "p99"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in "${!labels[@]}"; do
  rps=$(awk -v r="$i" '$1 == r {print $2}' "$work/results" | median)
  p50=$(awk -v r="$i" '$1 == r {print $3}' "$work/results" | sed 's/ms$//;s/us$/e-3/;s/\([0-9]\)s$/\1e3/' | median)
  p99=$(awk -v r="$i" '$1 == r {print $4}' "$work/results" | sed 's/ms$//;s/us$/e-3/;s/\([0-9]\)s$/\1e3/' | median)
  printf '%-52s %10s %8sms %8sms\n' "${labels[$i]}" "$rps" "$p50" "$p99"
done
[ -z "$sdk_row" ] || printf '%-52s %s\n' "clerk-backend-api authenticate_request" "$sdk_row"

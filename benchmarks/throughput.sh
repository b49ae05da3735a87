#!/usr/bin/env bash
# Whole-server throughput on loopback: gunicorn (gthread) serving the apps of benchmarks/throughput_app.py,
# loaded by wrk for a bounded time per row.
#
#   bash benchmarks/throughput.sh               # 10 s per row
#   DURATION=30 WORKERS=4 bash benchmarks/throughput.sh
#
# Needs wrk (Debian: apt-get install -y wrk) and gunicorn. wrk and gunicorn share the machine's cores, so the
# figures are for comparing rows of one run, not a capacity plan.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
WORKERS=${WORKERS:-$(nproc)}
THREADS=${THREADS:-4}
CONNECTIONS=${CONNECTIONS:-16}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v gunicorn >/dev/null || { echo "gunicorn is missing: pip install gunicorn" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
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
token=$(cat "$work/token")

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

serve() {  # serve APP [ENV=VALUE ...]: start gunicorn on a free loopback port, wait until it answers
  local app=$1; shift
  port=$(free_port)
  env "$@" BENCH_JWT_KEY_FILE="$work/key.pem" PYTHONPATH="$ROOT" \
    gunicorn --bind "127.0.0.1:$port" --workers "$WORKERS" --worker-class gthread --threads "$THREADS" \
    --log-level warning "benchmarks.throughput_app:$app" &
  server_pid=$!
  for _ in $(seq 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$port/" >/dev/null  # every worker up and warm
      return 0
    fi
    sleep 0.1
  done
  echo "gunicorn did not start for $app" >&2
  exit 1
}

stop() {
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

row() {  # row LABEL PATH [HEADER]: wrk for DURATION seconds; requests/s and latency percentiles
  local label=$1 path=$2 header=${3:-}
  # As behind a TLS-terminating proxy on loopback (gunicorn trusts 127.0.0.1): no HTTP->HTTPS redirects.
  local args=(-t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "X-Forwarded-Proto: https")
  [ -n "$header" ] && args+=(-H "$header")
  local out status
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Forwarded-Proto: https" ${header:+-H "$header"} \
    "http://127.0.0.1:$port$path")
  [ "$status" = 200 ] || { echo "$label: expected 200, got $status" >&2; exit 1; }
  out=$(wrk "${args[@]}" "http://127.0.0.1:$port$path")
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-52s %10s %9s %9s %8s\n' "$label" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "gunicorn gthread: $WORKERS workers x $THREADS threads; wrk: 1 thread, $CONNECTIONS connections, ${DURATION}s per row"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(python3 --version)"
printf '%-52s %10s %9s %9s %8s\n' "row" "req/s" "p50" "p99" "non-2xx"
auth="Authorization: Bearer $token"

serve plain
row "plain Flask route" /api/me
stop

serve clerk
row "public route, ClerkSecurity app" /api/public
row "protected route, repeated token (cache hit)" /api/me "$auth"
stop

serve clerk CLERK_TOKEN_CACHE_SIZE=0
row "protected route, cache off (every request verifies)" /api/me "$auth"
stop

if PYTHONPATH=$ROOT python3 -c "import clerk_backend_api" 2>/dev/null; then
  serve sdk
  row "clerk-backend-api authenticate_request" /api/me "$auth"
  stop
else
  printf '%-52s %s\n' "clerk-backend-api authenticate_request" "skipped: pip install .[bench]"
fi

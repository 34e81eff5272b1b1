#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/slow-clients: GET /api/v1/health latency on the real makima-api,
# without and then with BENCH_SLOW (1,000) slow connections open, each
# dripping one byte of a request head that never ends, from
# BENCH_ADDRESSES (50) loopback addresses so that MaxConnectionsPerIP= lets
# them all in; both measured in the same run (slow.py). See bench/README.md.
#
# Usage: bench/slow-clients/run.sh PATH/TO/makima-api
# Exit: 0 figures printed and p99 with the slow connections under
#       BENCH_MAX_P99_MS (100); 1 failure or target missed; 77 a tool is missing.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
api_bin=${1:-${MAKIMA_API:-}}
slow=${BENCH_SLOW:-1000}
addresses=${BENCH_ADDRESSES:-50}
drip=${BENCH_DRIP_SEC:-1}
requests=${BENCH_REQUESTS:-2000}
max_p99_ms=${BENCH_MAX_P99_MS:-100}
pin=${BENCH_PIN:-auto}
keep=${BENCH_KEEP:-0}
bench_name=slow-clients
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

[[ -n "$api_bin" ]] || die "usage: $0 PATH/TO/makima-api (or set MAKIMA_API)"
bench_executables api_bin
bench_need_tools python3:python3 curl:curl ss:iproute2
for n in "$slow" "$addresses" "$requests" "$max_p99_ms"; do
        [[ "$n" =~ ^[0-9]+$ ]] || die "BENCH_SLOW, BENCH_ADDRESSES, BENCH_REQUESTS and BENCH_MAX_P99_MS must be whole numbers"
done
(( addresses >= 1 && addresses <= 254 && requests >= 1 )) || die "need 1 <= BENCH_ADDRESSES <= 254 and BENCH_REQUESTS >= 1"
per_ip=$(( (slow + addresses - 1) / addresses ))

# Like bench/api: makima-api on CPU 0, the clients on CPU 1.
server_cpu=() client_cpu=()
if [[ "$pin" == auto ]]; then
        (( $(nproc) >= 2 )) && pin=1 || pin=0
fi
if [[ "$pin" == 1 ]] && command -v taskset >/dev/null 2>&1; then
        server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

# shellcheck disable=SC2034 # bench_cleanup ends it, by its name in bench_pid_vars
api_pid=''
bench_pid_vars="api_pid" bench_logs="makima-api"
bench_make_tmp

# Room for every slow connection and then some, and deadlines longer than the
# run: what is measured is serving health while they are open, not ending them.
cat > "$tmp/makima.conf" <<CONF
[Store]
Backend=sqlite
Path=$tmp/makima.db

[API]
MaxConnections=$(( slow + 256 ))
MaxConnectionsPerIP=$(( per_ip > 64 ? per_ip : 64 ))
RequestHeadTimeoutSec=3600
ConnectionTimeoutSec=3600
CONF
# A port free a moment ago may be taken by the time makima-api binds it
# (ephemeral ports of the clients of an earlier run): try another.
for _ in 1 2 3; do
        port=$(free_port)
        "${server_cpu[@]}" "$api_bin" --config "$tmp/makima.conf" --listen "127.0.0.1:$port" >"$tmp/makima-api.log" 2>&1 &
        api_pid=$!
        for _ in $(seq 200); do
                curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/health" && break 2
                kill -0 "$api_pid" 2>/dev/null || break
                sleep 0.05
        done
        wait "$api_pid" 2>/dev/null || true
        api_pid=''
        grep -q "Failed to bind" "$tmp/makima-api.log" || break
done
[[ -n "$api_pid" ]] && curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/health" ||
        die "makima-api does not answer GET /api/v1/health"

say "makima-api ($api_bin) on 127.0.0.1:$port, SQLite; clients pinned: $([[ ${#client_cpu[@]} -gt 0 ]] && echo yes || echo no)"
"${client_cpu[@]}" python3 "$here/slow.py" "$port" "$slow" "$addresses" "$drip" "$requests" | tee "$tmp/result"

read -r _ _ _ _ _ p99 _ still failed < <(grep '^RESULT ' "$tmp/result")
kill -0 "$api_pid" 2>/dev/null || die "makima-api died during the run"
(( failed == 0 )) || die "$failed health requests failed"
(( still == slow )) || die "only $still of $slow slow connections stayed open"
if awk -v p="$p99" -v m="$max_p99_ms" 'BEGIN { exit !(p < m) }'; then
        echo "p99 with $slow slow connections open: $p99 ms (needs < $max_p99_ms: ok)"
else
        echo "p99 with $slow slow connections open: $p99 ms (needs < $max_p99_ms: MISSED)"
        exit 1
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/api: API throughput of the real makima-api on its SQLite store, next
# to nginx serving a static file of the same size, both loaded on loopback by
# wrk in the same run. See bench/README.md for what it prints and why.
#
# Usage: bench/api/run.sh PATH/TO/makima-api
# Exit: 0 figures printed and GET ratio met; 1 failure or GET ratio missed;
#       77 a tool is missing (meson reports the benchmark as skipped).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

api_bin=${1:-${MAKIMA_API:-}}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
rounds=${BENCH_ROUNDS:-3}
threads=${BENCH_THREADS:-1}
connections=${BENCH_CONNECTIONS:-32}
ntasks=${BENCH_TASKS:-1000}
nginx_workers=${BENCH_NGINX_WORKERS:-1}
min_get_ratio=${BENCH_MIN_GET_RATIO:-0.25}
pin=${BENCH_PIN:-auto}
keep=${BENCH_KEEP:-0}
bench_name=api
# shellcheck source=bench/lib.sh
. "$here/../lib.sh"

if [[ -z "$api_bin" ]]; then
        die "usage: $0 PATH/TO/makima-api (or set MAKIMA_API)"
fi
bench_executables api_bin
bench_tools_hint="(nginx-light, nginx-core or nginx all provide nginx)"
bench_need_tools wrk:wrk nginx:nginx-light curl:curl jq:jq ss:iproute2

for n in "$duration" "$warmup" "$rounds" "$threads" "$connections" "$ntasks" "${nginx_workers/#auto/1}"; do
        [[ "$n" =~ ^[0-9]+$ ]] || die "BENCH_* settings must be whole numbers, got '$n'"
done
(( connections >= threads && threads >= 1 && ntasks >= 1 && duration >= 1 && rounds >= 1 )) ||
        die "need BENCH_CONNECTIONS >= BENCH_THREADS >= 1 and BENCH_TASKS, BENCH_DURATION, BENCH_ROUNDS >= 1"

# With two or more CPUs the servers share CPU 0 (only one of them is under
# load at a time) and wrk gets CPU 1, so each server has exactly one core,
# whatever its threading model, and never fights the load generator.
server_cpu=() wrk_cpu=()
if [[ "$pin" == auto ]]; then
        (( $(nproc) >= 2 )) && pin=1 || pin=0
fi
if [[ "$pin" == 1 ]] && command -v taskset >/dev/null 2>&1; then
        server_cpu=(taskset -c 0) wrk_cpu=(taskset -c 1)
else
        pin=0
fi

# shellcheck disable=SC2034 # bench_cleanup ends them, by their names in bench_pid_vars
api_pid='' nginx_pid='' wrk_pid=''
bench_pid_vars="wrk_pid api_pid nginx_pid" bench_logs="makima-api"
# shellcheck disable=SC2119 # no mode: nothing but us reads the directory
bench_make_tmp
# ---- makima-api ----

api_port=$(free_port)
api_sock="$tmp/api.sock"
mkdir -p "$tmp/state"
cat > "$tmp/makima.conf" <<EOF
[Store]
Backend=sqlite

[API]
MaxConnections=$(( connections * 2 + 64 ))
EOF

STATE_DIRECTORY="$tmp/state" "${server_cpu[@]}" "$api_bin" \
        --config "$tmp/makima.conf" \
        --listen "127.0.0.1:$api_port" \
        --listen "unix:$api_sock" \
        >"$tmp/makima-api.log" 2>&1 &
api_pid=$!

api_url="http://127.0.0.1:$api_port"
for _ in $(seq 200); do
        kill -0 "$api_pid" 2>/dev/null || die "makima-api exited during start-up"
        if [[ -S "$api_sock" ]] &&
           curl -sf -o /dev/null --unix-socket "$api_sock" http://localhost/api/v1/health &&
           curl -sf -o /dev/null "$api_url/api/v1/health"; then
                break
        fi
        sleep 0.05
done
curl -sf -o /dev/null "$api_url/api/v1/health" || die "makima-api does not answer GET /api/v1/health"

token=$(curl -sS --fail-with-body --unix-socket "$api_sock" \
                -H 'Content-Type: application/json' \
                -d '{"owner":"bench","description":"bench/api"}' \
                http://localhost/api/v1/tokens | jq -er .token) ||
        die "could not create an API token over $api_sock"

# One task by hand: its 201 body is the model for nginx's POST answer.
task_body() {
        printf '{"plan":"Benchmark task %d: read the README and summarise it in one paragraph.","name":"bench-%d"}' "$1" "$1"
}
mkdir -p "$tmp/www"
code=$(curl -sS -o "$tmp/www/created.json" -w '%{http_code}' \
                -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
                -d "$(task_body 1)" "$api_url/api/v1/tasks")
[[ "$code" == 201 ]] || die "POST /api/v1/tasks answered $code: $(head -c 300 "$tmp/www/created.json")"
first_id=$(jq -er '.id // .task.id' "$tmp/www/created.json") ||
        die "no task id in the POST answer: $(head -c 300 "$tmp/www/created.json")"
echo "$first_id" > "$tmp/ids"

# The rest in four keep-alive curl processes, one connection each.
say "creating $ntasks tasks"
batches=4
for (( j = 0; j < batches; j++ )); do
        : > "$tmp/create-$j.conf"
done
for (( n = 2; n <= ntasks; n++ )); do
        body=$(task_body "$n")
        conf="$tmp/create-$(( n % batches )).conf"
        # "next" separates transfers; a trailing one would start an empty one.
        [[ -s "$conf" ]] && echo next >> "$conf"
        cat >> "$conf" <<EOF
url = "$api_url/api/v1/tasks"
header = "Authorization: Bearer $token"
header = "Content-Type: application/json"
data = "${body//\"/\\\"}"
write-out = "\n"
EOF
done
create_pids=()
for (( j = 0; j < batches; j++ )); do
        if [[ -s "$tmp/create-$j.conf" ]]; then
                curl -sS -K "$tmp/create-$j.conf" > "$tmp/create-$j.out" &
                create_pids+=($!)
        fi
done
for pid in "${create_pids[@]}"; do
        wait "$pid" || die "creating tasks with curl failed"
done
for (( j = 0; j < batches; j++ )); do
        if [[ -e "$tmp/create-$j.out" ]]; then
                jq -r '.id // .task.id // empty' "$tmp/create-$j.out" >> "$tmp/ids" || true
        fi
done
created=$(wc -l < "$tmp/ids")
if (( created != ntasks )); then
        say "only $created of $ntasks tasks were created; an answer was:"
        grep -hv '"id"' "$tmp"/create-*.out | head -n 3 >&2 || true
        exit 1
fi

# nginx serves exactly the bytes makima-api answers for a task.
code=$(curl -sS -o "$tmp/www/task.json" -w '%{http_code}' \
                -H "Authorization: Bearer $token" "$api_url/api/v1/tasks/$first_id")
[[ "$code" == 200 ]] || die "GET /api/v1/tasks/$first_id answered $code"
get_size=$(stat -c %s "$tmp/www/task.json")
post_size=$(stat -c %s "$tmp/www/created.json")

# ---- nginx ----

nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
# The master runs as root here and its worker as nobody, which must be able
# to read the document root.
chmod 755 "$tmp" "$tmp/www"
chmod 644 "$tmp/www/task.json" "$tmp/www/created.json"
cat > "$tmp/nginx/nginx.conf" <<EOF
# An ordinary static-file nginx, as Debian ships it, minus logging.
worker_processes $nginx_workers;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
daemon off;
events {
        worker_connections $(( connections * 2 + 64 ));
}
http {
        access_log off;
        sendfile on;
        tcp_nopush on;
        default_type application/json;
        # wrk holds its connections open for the whole run, as it does
        # against makima-api; nginx's default would close each after 1000
        # requests and make it pay for reconnects makima-api never sees.
        keepalive_requests 1000000;
        client_body_temp_path $tmp/nginx/body;
        proxy_temp_path $tmp/nginx/proxy;
        fastcgi_temp_path $tmp/nginx/fastcgi;
        uwsgi_temp_path $tmp/nginx/uwsgi;
        scgi_temp_path $tmp/nginx/scgi;
        server {
                listen 127.0.0.1:$nginx_port;
                root $tmp/www;
                # Same request paths as makima-api gets, one file for all.
                location ^~ /api/v1/tasks/ {
                        try_files /task.json =404;
                }
                # The static handler refuses POST with 405; turn that into a
                # 201 with the file, after nginx has read the body.
                location = /api/v1/tasks {
                        error_page 405 =201 /created.json;
                        try_files /created.json =404;
                }
        }
}
EOF

"${server_cpu[@]}" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" \
        >"$tmp/nginx/stdout.log" 2>&1 &
nginx_pid=$!
nginx_url="http://127.0.0.1:$nginx_port"
for _ in $(seq 200); do
        kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited during start-up: $(cat "$tmp/nginx/error.log")"
        curl -s -o /dev/null "$nginx_url/api/v1/tasks/x" && break
        sleep 0.05
done
cmp -s "$tmp/www/task.json" <(curl -sS "$nginx_url/api/v1/tasks/$first_id") ||
        die "nginx does not serve the task file: $(cat "$tmp/nginx/error.log")"

# ---- load ----

export BENCH_TOKEN="$token" BENCH_IDS_FILE="$tmp/ids"

# wrk runs in the background so that a signal to this script is handled at
# once (bash runs traps only between foreground commands).
wrk_run() {
        "${wrk_cpu[@]}" wrk -t"$threads" -c"$connections" "$@" &
        wrk_pid=$!
        wait "$wrk_pid"
        wrk_pid=''
}

# measure NAME SCRIPT URL ROUND: one wrk run; appends "REQUESTS/S P99_MS" to
# NAME.runs in $tmp.
measure() {
        local name=$1 script=$2 url=$3 round=$4 out="$tmp/$1.$4.wrk"
        wrk_run -d"${duration}s" --latency -s "$here/$script" "$url" > "$out"
        if [[ "${BENCH_VERBOSE:-0}" == 1 ]]; then
                sed "s/^/  $name#$round: /" "$out" >&2
        fi

        local bad errors rps p99
        bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
        if [[ -n "$bad" ]]; then
                cat "$out" >&2
                die "$name: $bad answers were not 2xx"
        fi
        errors=$(grep -m1 'Socket errors:' "$out" || true)
        if [[ -n "$errors" ]]; then
                say "$name#$round: $errors"
        fi

        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        # "     99%    1.23ms": wrk picks us, ms or s; bring all to ms.
        p99=$(awk '$1 == "99%" {
                v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
                if (f >= 0) printf "%.3f\n", v * f
        }' "$out")
        if [[ -z "$rps" || -z "$p99" ]]; then
                cat "$out" >&2
                die "$name: could not read requests/s and p99 from wrk's output"
        fi
        echo "$rps $p99" >> "$tmp/$name.runs"
}

# Targets: name, wrk script, base URL.
targets=(
        "api-get get-task.lua $api_url"
        "nginx-get get-task.lua $nginx_url"
        "api-post post-task.lua $api_url"
        "nginx-post post-task.lua $nginx_url"
)

if (( warmup > 0 )); then
        say "warming up: ${warmup}s against each target"
        for t in "${targets[@]}"; do
                read -r _ script url <<< "$t"
                wrk_run -d"${warmup}s" -s "$here/$script" "$url" > /dev/null
        done
fi

# The targets take turns, round after round, so that a burst of load from
# elsewhere on the machine hits all of them rather than one. Such load only
# ever slows a server down, so each target's best round is the closest to
# what it can do undisturbed, and that round is the one reported.
say "wrk -t$threads -c$connections -d${duration}s, $rounds round(s) over ${#targets[@]} targets"
for (( round = 1; round <= rounds; round++ )); do
        for t in "${targets[@]}"; do
                read -r name script url <<< "$t"
                measure "$name" "$script" "$url" "$round"
        done
done

# ---- report ----

# best NAME: "REQUESTS/S P99_MS" of NAME's round with the most requests/s.
best() { sort -g -r -k1,1 "$tmp/$1.runs" | head -n 1; }
best_rps() { best "$1" | cut -d' ' -f1; }
best_p99() { best "$1" | cut -d' ' -f2; }
ratio() { awk -v a="$(best_rps "$1")" -v b="$(best_rps "$2")" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
get_ratio=$(ratio api-get nginx-get)
post_ratio=$(ratio api-post nginx-post)
get_ok=$(awk -v r="$get_ratio" -v m="$min_get_ratio" 'BEGIN { print (r >= m) ? 1 : 0 }')

if (( pin )); then pinning="servers on CPU 0, wrk on CPU 1"; else pinning="no CPU pinning"; fi
echo
echo "makima-api ($api_bin) on SQLite with $ntasks tasks; nginx $(nginx -v 2>&1 | sed 's|.*/||'), $nginx_workers worker(s)"
echo "wrk -t$threads -c$connections -d${duration}s --latency, warm-up ${warmup}s, best of $rounds round(s); $pinning"
echo "task JSON: GET $get_size bytes, POST 201 $post_size bytes; nginx serves the same bytes"
echo
printf '%-36s %12s %10s   %s\n' target 'req/s' 'p99 ms' 'req/s per round'
row() {
        printf '%-36s %12.1f %10.2f   %s\n' "$1" "$(best_rps "$2")" "$(best_p99 "$2")" \
                "$(awk '{ printf "%s%.0f", (NR > 1) ? " " : "", $1 }' "$tmp/$2.runs")"
}
row "makima-api GET  /api/v1/tasks/{id}" api-get
row "nginx      GET  static file" nginx-get
row "makima-api POST /api/v1/tasks" api-post
row "nginx      POST static file (201)" nginx-post
echo
printf 'ratio makima/nginx GET  %.3f  (needs >= %s: %s)\n' "$get_ratio" "$min_get_ratio" \
        "$( (( get_ok )) && echo ok || echo MISSED)"
printf 'ratio makima/nginx POST %.3f\n' "$post_ratio"

if (( ! get_ok )); then
        say "GET /api/v1/tasks/{id} reached only $get_ratio of nginx's requests/s; the target is $min_get_ratio"
        exit 1
fi
exit 0

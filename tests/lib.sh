# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the integration tests that drive a real makima-api: a
# temporary state directory and config, start and stop (SIGTERM, exit 0),
# requests with curl over the Unix socket (as admin) or TCP (with a bearer
# token), checks of status codes and JSON, a private D-Bus, writing the store
# directly where a worker would (no worker runs in these tests), following a
# task's event stream, and running the makima CLI with checks of its output.
# Source it; needs bash, curl and jq.

set -euo pipefail

MAKIMA_API_BIN=${MAKIMA_API_BIN:-}
TEST_NAME=$(basename "$0")
TMP=''
API_PID=''
API_SOCK=''
API_PORT=''
API_URL=''
BUS_PID=''
BUS_ADDRESS=''

# What an id looks like, and one that names nothing.
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
nouuid=00000000-0000-4000-8000-000000000000

STATUS=''
BODY=''

fail() {
        local f

        echo "$TEST_NAME: FAIL: $*" >&2
        if [[ -n "$BODY" ]]; then
                echo "$TEST_NAME: last answer ($STATUS): $(head -c 2000 <<<"$BODY")" >&2
        fi
        if [[ -n "$TMP" && -s "$TMP/api.log" ]]; then
                echo "$TEST_NAME: last lines of makima-api's log:" >&2
                tail -n 30 "$TMP/api.log" >&2
        fi
        if [[ -n "$TMP" ]]; then
                for f in "$TMP"/worker*.log; do
                        [[ -s "$f" ]] || continue
                        echo "$TEST_NAME: last lines of $(basename "$f"):" >&2
                        tail -n 40 "$f" >&2
                done
        fi
        exit 1
}

say() {
        echo "$TEST_NAME: $*" >&2
}

# lib_cleanup [STATUS]: kills what the test started (only by the pids it
# recorded), removes the state and exits with STATUS (default: $?).
lib_cleanup() {
        local rc=${1:-$?}
        local pid

        for pid in $API_PID ${EXTRA_PIDS:-} $BUS_PID; do
                kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in $API_PID ${EXTRA_PIDS:-} $BUS_PID; do
                wait "$pid" 2>/dev/null || true
        done
        if [[ -n "$TMP" && "${KEEP_TMP:-0}" != 1 ]]; then
                rm -rf "$TMP"
        fi
        exit "$rc"
}

# As root, the users makima's services and agents run as must exist (an agent
# is never root): systemd-sysusers makes them from the project's own file,
# as an installation would.
ensure_users() {
        [[ $(id -u) = 0 ]] || return 0
        id makima-agent >/dev/null 2>&1 && id makima >/dev/null 2>&1 && return 0
        systemd-sysusers "$(dirname "${BASH_SOURCE[0]}")/../sysusers.d/makima.conf" ||
                fail "systemd-sysusers could not create the users makima and makima-agent"
}

# lib_init PATH/TO/makima-api: checks tools, makes $TMP, writes a config.
lib_init() {
        local tool

        MAKIMA_API_BIN=${1:-$MAKIMA_API_BIN}
        [[ -n "$MAKIMA_API_BIN" && -x "$MAKIMA_API_BIN" ]] || fail "usage: $0 PATH/TO/makima-api (or MAKIMA_API_BIN)"
        for tool in curl jq ss; do
                command -v "$tool" >/dev/null || { echo "$TEST_NAME: $tool is missing, skipping" >&2; exit 77; }
        done

        ensure_users
        TMP=$(mktemp -d "${TMPDIR:-/tmp}/makima-test.XXXXXX")
        chmod 0755 "$TMP"
        trap lib_cleanup EXIT
        API_SOCK="$TMP/api.sock"
        write_config
}

# write_config [LINES…]: the config makima-api starts with; extra lines go in
# [API]. The store is SQLite in $TMP, or the PostgreSQL server named by
# MAKIMA_TEST_PG_URL (see with-postgresql.sh).
write_config() {
        {
                if [[ -n "${MAKIMA_TEST_PG_URL:-}" ]]; then
                        printf '[Store]\nBackend=postgresql\nURL=%s\n\n[API]\n' "$MAKIMA_TEST_PG_URL"
                else
                        printf '[Store]\nBackend=sqlite\nPath=%s/makima.db\n\n[API]\n' "$TMP"
                fi
                printf '%s\n' "$@"
        } > "$TMP/makima.conf"
}

# A loopback port nobody listens on (racy in theory; api_start retries).
free_port() {
        local p

        for _ in $(seq 100); do
                p=$(( 20000 + RANDOM % 40000 ))
                if [[ -z "$(ss -Htln "sport = :$p")" ]]; then
                        echo "$p"
                        return 0
                fi
        done
        fail "no free loopback port"
}

# wait_for_health CURL-ARGS…: until GET /api/v1/health answers 200 (10 s).
wait_for_health() {
        for _ in $(seq 200); do
                if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$@" 2>/dev/null)" == 200 ]]; then
                        return 0
                fi
                [[ -z "$API_PID" ]] || kill -0 "$API_PID" 2>/dev/null || fail "makima-api exited during start-up"
                sleep 0.05
        done
        fail "makima-api did not answer /api/v1/health"
}

# api_start [ARGS…]: makima-api on $API_SOCK and a TCP port, in the background.
api_start() {
        local try

        for try in 1 2 3; do
                API_PORT=$(free_port)
                API_URL="http://127.0.0.1:$API_PORT"
                "$MAKIMA_API_BIN" --config "$TMP/makima.conf" --state-dir "${STATE:-$TMP/state}" \
                        --listen "unix:$API_SOCK" --listen "127.0.0.1:$API_PORT" "$@" \
                        >>"$TMP/api.log" 2>&1 &
                API_PID=$!
                for _ in $(seq 200); do
                        kill -0 "$API_PID" 2>/dev/null || break
                        if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$API_URL/api/v1/health")" == 200 ]]; then
                                wait_for_health --unix-socket "$API_SOCK" http://localhost/api/v1/health
                                return 0
                        fi
                        sleep 0.05
                done
                if kill -0 "$API_PID" 2>/dev/null; then
                        fail "makima-api did not answer on $API_URL"
                fi
                wait "$API_PID" || true
                API_PID=''
                grep -q "Failed to bind" "$TMP/api.log" || fail "makima-api did not start"
        done
        fail "makima-api could not bind a port"
}

# api_stop: SIGTERM; makima-api must exit 0 (and clean, under sanitizers).
api_stop() {
        local rc=0

        [[ -n "$API_PID" ]] || fail "api_stop: not running"
        kill -TERM "$API_PID"
        wait "$API_PID" || rc=$?
        API_PID=''
        (( rc == 0 )) || fail "makima-api exited with $rc after SIGTERM"
}

# req TRANSPORT METHOD PATH [BODY] [CURL-ARGS…]: one request; sets STATUS,
# BODY and $TMP/headers. TRANSPORT is "admin" (the Unix socket, root's peer
# credentials), "anon" (TCP, no credentials) or a token (TCP, Bearer).
req() {
        local transport=$1 method=$2 path=$3 data=${4:-}
        local args=(-sS --max-time 30 -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}')

        shift 3
        (( $# )) && shift
        case "$transport" in
        admin) args+=(--unix-socket "$API_SOCK") ; path="http://localhost$path" ;;
        anon)  path="$API_URL$path" ;;
        *)     args+=(-H "Authorization: Bearer $transport") ; path="$API_URL$path" ;;
        esac
        if [[ -n "$data" ]]; then
                # A Content-Type among the caller's arguments replaces ours.
                [[ " $* " == *" -H Content-Type:"* ]] || args+=(-H 'Content-Type: application/json')
                args+=(--data-binary "$data")
        fi
        STATUS=$(curl "${args[@]}" "$@" "$path") || fail "curl $method $path failed"
        BODY=$(cat "$TMP/body")
}

expect_status() {
        [[ "$STATUS" == "$1" ]] || fail "${2:-request}: expected HTTP $1, got $STATUS"
}

# expect_error STATUS CODE [WHAT]: the answer is the JSON error with this code.
expect_error() {
        expect_status "$1" "${3:-request}"
        local code

        code=$(jq -er '.error.code' <<<"$BODY" 2>/dev/null) || fail "${3:-request}: no JSON error body"
        [[ "$code" == "$2" ]] || fail "${3:-request}: expected error code $2, got $code"
        jq -e '.error.message | type == "string" and length > 0' <<<"$BODY" >/dev/null ||
                fail "${3:-request}: error without a message"
        grep -qi '^content-type: application/json' "$TMP/headers" || fail "${3:-request}: error is not application/json"
}

# expect_message REGEX: the error message matches.
expect_message() {
        jq -er '.error.message' <<<"$BODY" | grep -Eq -- "$1" || fail "error message does not match /$1/"
}

# expect_bad_field TRANSPORT METHOD PATH BODY WHAT [REGEX]: req, then the
# answer is the 400 invalid_field error, its message matching REGEX if given.
expect_bad_field() {
        req "$1" "$2" "$3" "$4"
        expect_error 400 invalid_field "$5"
        (( $# < 6 )) || expect_message "$6"
}

# jqr FILTER: FILTER applied to the last answer, raw.
jqr() {
        jq -er "$1" <<<"$BODY" || fail "jq '$1' failed on the answer"
}

# expect_json FILTER VALUE: the filter gives exactly VALUE (raw output).
expect_json() {
        local got

        got=$(jq -r "$1" <<<"$BODY") || fail "jq '$1' failed on the answer"
        [[ "$got" == "$2" ]] || fail "$1: expected '$2', got '$got'"
}

# expect_header NAME REGEX
expect_header() {
        grep -i "^$1:" "$TMP/headers" | tr -d '\r' | grep -Eq -- "$2" ||
                fail "header $1 does not match /$2/: $(grep -i "^$1:" "$TMP/headers" || echo none)"
}

# ---- a private D-Bus ----

# bus_start: a dbus-daemon of our own on $TMP/bus; exports MAKIMA_BUS_ADDRESS
# so that makima-api started afterwards connects to it. Returns 1 (and says
# why) when dbus-daemon or busctl is not installed.
bus_start() {
        if ! command -v dbus-daemon >/dev/null || ! command -v busctl >/dev/null; then
                say "dbus-daemon or busctl is missing: skipping the D-Bus checks"
                return 1
        fi
        dbus-daemon --session --nofork --nopidfile --nosyslog --address="unix:path=$TMP/bus" \
                --print-address=1 >"$TMP/bus.address" 2>"$TMP/bus.log" &
        BUS_PID=$!
        for _ in $(seq 100); do
                [[ -s "$TMP/bus.address" ]] && break
                kill -0 "$BUS_PID" 2>/dev/null || fail "dbus-daemon did not start: $(cat "$TMP/bus.log")"
                sleep 0.05
        done
        [[ -s "$TMP/bus.address" ]] || fail "dbus-daemon did not print its address"
        BUS_ADDRESS="unix:path=$TMP/bus"
        export MAKIMA_BUS_ADDRESS=$BUS_ADDRESS
}

# wait_for_bus_name NAME: until NAME has an owner on our bus (5 s).
wait_for_bus_name() {
        for _ in $(seq 100); do
                busctl --address="$BUS_ADDRESS" --no-legend list 2>/dev/null | grep -q "^$1 " && return 0
                sleep 0.05
        done
        fail "nobody owns $1 on the bus"
}

# ---- the store, written where a worker would ----

# store_sql SQL: runs SQL (one transaction) on the store makima-api uses:
# the SQLite file, or the PostgreSQL server of with-postgresql.sh. Prints rows.
store_sql() {
        if [[ -n "${MAKIMA_TEST_PG_URL:-}" ]]; then
                psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$MAKIMA_TEST_PG_URL" -c "$1" || fail "psql failed: $1"
        else
                sqlite3 -cmd '.timeout 10000' "$TMP/makima.db" "BEGIN; $1; COMMIT;" || fail "sqlite3 failed: $1"
        fi
}

# task_add_event ID TYPE PAYLOAD: appends an event to the task's log as a worker would.
task_add_event() {
        store_sql "INSERT INTO task_events (task_id, seq, type, payload, created_at)
                   SELECT '$1', COALESCE(MAX(seq), 0) + 1, '$2', '$3', $(date +%s%6N) FROM task_events WHERE task_id = '$1'"
}

# task_set_status ID STATUS: the status change a worker writes, with a
# "status" event {"from":…,"to":…}, in one transaction.
task_set_status() {
        local from

        from=$(store_sql "SELECT status FROM tasks WHERE id = '$1'")
        [[ -n "$from" ]] || fail "task_set_status: no task $1"
        store_sql "UPDATE tasks SET status = '$2', version = version + 1, updated_at = $(date +%s%6N) WHERE id = '$1';
                   INSERT INTO task_events (task_id, seq, type, payload, created_at)
                   SELECT '$1', COALESCE(MAX(seq), 0) + 1, 'status', '{\"from\":\"$from\",\"to\":\"$2\"}', $(date +%s%6N)
                   FROM task_events WHERE task_id = '$1'"
}

# sandbox_pids ID: the processes whose environment names the task (bwrap
# and everything in its sandbox).
sandbox_pids() {
        grep -l -s -a "MAKIMA_TASK_ID=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
}

proc_state() {
        sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1
}

# is_paused PID: whether a process is held still: stopped (T), or in a frozen cgroup (the
# worker freezes a task's cgroup where it has one).
is_paused() {
        local line path mount

        [[ "$(proc_state "$1")" == T ]] && return 0
        while IFS= read -r line; do
                path=${line#*:*:}
                case "$line" in
                0::*)
                        mount=$(findmnt -n -o TARGET -t cgroup2 | head -n1)
                        grep -qx 'frozen 1' "$mount$path/cgroup.events" 2>/dev/null && return 0 ;;
                *:freezer:*)
                        mount=$(findmnt -n -o TARGET -t cgroup -O freezer | head -n1)
                        grep -qx FROZEN "$mount$path/freezer.state" 2>/dev/null && return 0 ;;
                esac
        done <"/proc/$1/cgroup"
        return 1
}

# make_task_repo REPO BASE ID [BRANCH]: the task's own repository as a
# worker makes it (src/sandbox/git-util.c), for tests with no worker: its
# git directory under $STATE/git borrowing REPO's objects, its branch
# (makima/<first 8 of ID>) at BASE, a copy of BASE, the worktree checked
# out under $STATE/worktrees (or $WORKTREES). Prints the worktree.
make_task_repo() {
        local repo=$1 base=$2 id=$3 branch=${4:-makima/${3:0:8}} state=${STATE:-$TMP/state}
        local gd="$state/git/$id" wt="${WORKTREES:-$state/worktrees}/$id" commit

        commit=$(git -C "$repo" rev-parse "$base^{commit}")
        mkdir -p "$gd" "$wt"
        git init -q --bare --template= -b "$branch" "$gd"
        printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n' >"$gd/config"
        git -C "$repo" rev-parse --path-format=absolute --git-common-dir | sed 's|$|/objects|' \
                >"$gd/objects/info/alternates"
        git --git-dir="$gd" update-ref "refs/heads/$branch" "$commit"
        git --git-dir="$gd" update-ref "refs/heads/$base" "$commit" 2>/dev/null || true
        printf 'gitdir: %s\n' "$gd" >"$wt/.git"
        git --git-dir="$gd" --work-tree="$wt" read-tree -u --reset HEAD
        echo "$wt"
}

# ---- tasks, as a worker runs them ----

# create_task PLAN [JQ-EXPRESSION]: an administrator's task on $REPO; prints
# its id. The expression amends the body, e.g. '.repo = "/nonexistent"'.
create_task() {
        local body

        body=$(jq -nc --arg plan "$1" --arg repo "$REPO" "{plan: \$plan, repo: \$repo} | ${2:-.}")
        req admin POST /api/v1/tasks "$body"
        expect_status 201 "create task"
        jqr .id
}

get_task() {
        req admin GET "/api/v1/tasks/$1"
        expect_status 200 "get task $1"
}

# wait_status ID STATUS [SECONDS]: until the task has this status (default 30 s).
wait_status() {
        local id=$1 want=$2 deadline=$((SECONDS + ${3:-30})) got=''

        while ((SECONDS < deadline)); do
                get_task "$id"
                got=$(jqr .status)
                [[ "$got" == "$want" ]] && return 0
                sleep 0.1
        done
        fail "task $id: expected status $want, still $got: $BODY"
}

# events ID: the task's events (at most 1000) in $BODY.
events() {
        req admin GET "/api/v1/tasks/$1/events?limit=1000"
        expect_status 200 "events of $1"
}

# wait_file FILE REGEX [SECONDS]: until FILE matches (default 20 s).
wait_file() {
        local deadline=$((SECONDS + ${3:-20}))

        while ((SECONDS < deadline)); do
                grep -Eq -- "$2" "$1" 2>/dev/null && return 0
                sleep 0.1
        done
        fail "$1 does not match /$2/ after ${3:-20} s: $(head -c 2000 "$1" 2>/dev/null)"
}

# wait_for_file_match FILE REGEX [SECONDS]: until a line of FILE matches (default 10 s).
wait_for_file_match() {
        local tries=$(( ${3:-10} * 20 ))

        for _ in $(seq "$tries"); do
                grep -Eq -- "$2" "$1" 2>/dev/null && return 0
                sleep 0.05
        done
        fail "$1 has no line matching /$2/: $(head -c 3000 "$1" 2>/dev/null)"
}

# follow CURL-ARGS… OUT: curl -N on a task's event stream, in the background; sets FOLLOW_PID.
follow() {
        local out=${*: -1}

        curl -sS -N --max-time 60 -D "$out.headers" "${@:1:$#-1}" >"$out" 2>"$out.err" &
        FOLLOW_PID=$!
}

# ---- the makima CLI (test-cli*.sh set $MAKIMA) ----

OUT=''
ERR=''
RC=0

# run RC ARGS…: runs makima, keeps stdout in $OUT and stderr in $ERR, checks the exit status.
run() {
        local want=$1
        shift
        RC=0
        "$MAKIMA" "$@" >"$TMP/out" 2>"$TMP/err" || RC=$?
        OUT=$(cat "$TMP/out")
        ERR=$(cat "$TMP/err")
        if [[ "$RC" != "$want" ]]; then
                echo "stdout: $OUT" >&2
                echo "stderr: $ERR" >&2
                fail "makima $*: exit status $RC, expected $want"
        fi
}

out_has() {
        grep -Eq -- "$1" <<<"$OUT" || fail "stdout does not match /$1/: $OUT"
}
out_lacks() {
        ! grep -Eq -- "$1" <<<"$OUT" || fail "stdout matches /$1/ but should not: $OUT"
}
# err_is TEXT: stderr is exactly this one line.
err_is() {
        [[ "$ERR" == "$1" ]] || fail "stderr: expected '$1', got '$ERR'"
}
err_has() {
        grep -Eq -- "$1" <<<"$ERR" || fail "stderr does not match /$1/: $ERR"
}
# json_is FILTER VALUE: on $OUT.
json_is() {
        local got
        got=$(jq -r "$1" <<<"$OUT") || fail "stdout is not JSON for '$1': $OUT"
        [[ "$got" == "$2" ]] || fail "$1: expected '$2', got '$got'"
}
# same_as_api PATH: $OUT (from --json) is exactly what the API serves at PATH.
same_as_api() {
        req admin GET "$1"
        expect_status 200 "GET $1"
        [[ "$(jq -S . <<<"$OUT")" == "$(jq -S . <<<"$BODY")" ]] ||
                fail "--json output differs from GET $1: $OUT vs $BODY"
}

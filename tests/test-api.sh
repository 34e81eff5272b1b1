#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives the real makima-api with curl: every route, every error status with
# its JSON body, owner isolation, optimistic locking, state machines, limits,
# tokens, task control requests, live event streams (SSE), diffs of real git
# worktrees, notifications, the D-Bus name and signals on a private bus,
# restart and SIGTERM. No worker runs: the test writes the store where a
# worker would (tests/lib.sh). With --socket-activation, checks instead that
# it serves sockets handed over by systemd-socket-activate and leaves them
# usable for the next start.
#
# Usage: test-api.sh [--socket-activation] PATH/TO/makima-api

mode=api
if [[ "${1:-}" == --socket-activation ]]; then
        mode=activation
        shift
fi

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
nouuid=00000000-0000-4000-8000-000000000000

# ---- socket activation ----

test_socket_activation() {
        command -v systemd-socket-activate >/dev/null || { say "systemd-socket-activate is missing, skipping"; exit 77; }
        local port pid rc

        port=$(free_port)
        API_PORT=$port
        API_URL="http://127.0.0.1:$port"

        # Like systemd, the wrapper holds the sockets; it starts makima-api on
        # them twice, so the second start proves the first left them intact.
        cat > "$TMP/run-twice.sh" <<'EOF'
#!/bin/sh
tmp=$1
shift
for i in 1 2; do
        sh -c 'echo $$ > "$0"; LISTEN_PID=$$; export LISTEN_PID; exec "$@"' "$tmp/pid.$i" "$@"
        echo $? > "$tmp/rc.$i"
        if [ "$i" = 1 ]; then sleep 1; fi
done
EOF
        chmod +x "$TMP/run-twice.sh"
        systemd-socket-activate -l "$API_SOCK" -l "127.0.0.1:$port" \
                "$TMP/run-twice.sh" "$TMP" "$MAKIMA_API_BIN" --config "$TMP/makima.conf" \
                >>"$TMP/api.log" 2>&1 &
        EXTRA_PIDS=$!

        for _ in $(seq 100); do
                [[ -S "$API_SOCK" ]] && break
                sleep 0.05
        done
        [[ -S "$API_SOCK" ]] || fail "systemd-socket-activate did not open $API_SOCK"
        sleep 0.2
        [[ ! -e "$TMP/pid.1" ]] || fail "makima-api started before the first request"

        # The first request, on the Unix socket, starts it and is answered.
        req admin GET /api/v1/health
        expect_status 200 "first request on the Unix socket"
        [[ -s "$TMP/pid.1" ]] || fail "makima-api was not started by the first request"
        req admin POST /api/v1/contracts '{"name":"activated"}'
        expect_status 201 "admin on the inherited Unix socket"
        id=$(jqr .id)

        req anon GET /api/v1/health
        expect_status 200 "health on the inherited TCP socket"
        req anon GET /api/v1/contracts
        expect_error 401 unauthorized "no credentials on the inherited TCP socket"

        pid=$(cat "$TMP/pid.1")
        kill -TERM "$pid"
        for _ in $(seq 100); do
                [[ -s "$TMP/rc.1" ]] && break
                sleep 0.05
        done
        rc=$(cat "$TMP/rc.1" 2>/dev/null || echo none)
        [[ "$rc" == 0 ]] || fail "first makima-api exited with $rc after SIGTERM"

        # Nobody serves the sockets for a moment; these requests wait in the
        # backlog and the second start answers them.
        req admin GET "/api/v1/contracts/$id"
        expect_status 200 "Unix socket after a restart"
        expect_json .name activated
        req anon GET /api/v1/health
        expect_status 200 "TCP socket after a restart"
        [[ -s "$TMP/pid.2" ]] || fail "no second start"

        kill -TERM "$(cat "$TMP/pid.2")"
        wait "$EXTRA_PIDS" || fail "the socket holder failed"
        EXTRA_PIDS=''
        rc=$(cat "$TMP/rc.2" 2>/dev/null || echo none)
        [[ "$rc" == 0 ]] || fail "second makima-api exited with $rc after SIGTERM"
        say "ok"
}

if [[ "$mode" == activation ]]; then
        lib_init "${1:-}"
        test_socket_activation
        exit 0
fi

# ---- the API ----

lib_init "${1:-}"
write_config "MaxBodyBytes=4K" "MaxHeaderBytes=8K" "AdminGroup=makima-test-admins"

"$MAKIMA_API_BIN" --help | grep -q -- '--listen=ADDRESS' || fail "--help does not describe --listen"
"$MAKIMA_API_BIN" --version | grep -Eq '^makima-api [0-9]' || fail "--version"
if "$MAKIMA_API_BIN" --no-such-option >/dev/null 2>&1; then
        fail "an unknown option was accepted"
fi

have_bus=0
if bus_start; then
        have_bus=1
fi
api_start
if (( have_bus )); then
        wait_for_bus_name org.makima1
        busctl --address="$BUS_ADDRESS" --json=short monitor --match "type='signal',interface='org.makima1.Manager'" \
                >"$TMP/signals.json" 2>"$TMP/monitor.log" &
        MONITOR_PID=$!
        EXTRA_PIDS=$MONITOR_PID
        sleep 0.3
fi

say "health and authentication"
req anon GET /api/v1/health
expect_status 200 health
expect_json .status ok
expect_json .store "$([[ -n "${MAKIMA_TEST_PG_URL:-}" ]] && echo postgresql || echo sqlite)"
jqr '.version | length > 0' >/dev/null
req anon HEAD /api/v1/health "" -I
expect_status 200 "HEAD health"

req anon GET /api/v1/tasks
expect_error 401 unauthorized "no credentials"
expect_header WWW-Authenticate '^WWW-Authenticate: Bearer'
req mk_0123456789 GET /api/v1/tasks
expect_error 401 unauthorized "unknown token"
req anon GET /api/v1/tasks "" -H 'Authorization: Basic dXNlcjpwYXNz'
expect_error 401 unauthorized "Basic credentials"

say "tokens"
req admin POST /api/v1/tokens '{"owner":"alice","description":"test"}'
expect_status 201 "token for alice"
alice=$(jqr .token)
alice_token_id=$(jqr .id)
[[ "$alice" =~ ^mk_[0-9a-f]{64}$ ]] || fail "token format: $alice"
[[ "$alice_token_id" =~ $uuid_re ]] || fail "token id: $alice_token_id"
expect_json .owner alice
expect_header Location "/api/v1/tokens/$alice_token_id"
req admin POST /api/v1/tokens '{"owner":"bob"}'
expect_status 201 "token for bob"
bob=$(jqr .token)
expect_bad_field admin POST /api/v1/tokens '{"owner":"-x"}' "bad owner name" "'owner'"
expect_bad_field admin POST /api/v1/tokens '{"description":"nobody"}' "token without owner" "field 'owner' is required"
req "$alice" POST /api/v1/tokens '{"owner":"alice"}'
expect_error 403 forbidden "token by a non-admin"
req "$alice" DELETE "/api/v1/tokens/$alice_token_id"
expect_error 403 forbidden "revoke by a non-admin"
req "$alice" GET /api/v1/tasks
expect_status 200 "alice's token works"
expect_json '.tasks | length' 0

say "contracts"
req "$alice" POST /api/v1/contracts '{"name":"alpha","description":"the first","autonomous_loop":true}'
expect_status 201 "alice creates a contract"
ca=$(jqr .id)
[[ "$ca" =~ $uuid_re ]] || fail "contract id: $ca"
expect_header Location "/api/v1/contracts/$ca\$"
expect_json .owner alice
expect_json .type spec
expect_json .phase research
expect_json .status active
expect_json .autonomous_loop true
expect_json .max_cost_usd null
expect_json .version 1
req "$alice" POST /api/v1/contracts '{"name":"simple one","type":"simple","max_cost_usd":12.5}'
expect_status 201 "a simple contract"
expect_json .phase plan
expect_json .max_cost_usd 12.5
cs=$(jqr .id)
req "$bob" POST /api/v1/contracts '{"name":"bravo"}'
expect_status 201 "bob creates a contract"
cb=$(jqr .id)
expect_json .owner bob
req admin POST /api/v1/contracts '{"name":"for carol","owner":"carol"}'
expect_status 201 "admin creates a contract for carol"
expect_json .owner carol
req admin POST /api/v1/contracts '{"name":"admin own"}'
expect_status 201 "admin creates a contract for itself"
expect_json .owner "$(id -un)"
expect_bad_field "$alice" POST /api/v1/contracts '{"name":"x","owner":"bob"}' "non-admin sets an owner" "field 'owner'"
expect_bad_field "$alice" POST /api/v1/contracts '{"name":"x","type":"weird"}' "bad contract type" "field 'type'.*spec, simple, execute"
expect_bad_field "$alice" POST /api/v1/contracts '{"name":""}' "empty name"
expect_bad_field "$alice" POST /api/v1/contracts '{"description":"no name"}' "missing name" "field 'name' is required"
for m in -1 -0.01 '"5"' true; do
        expect_bad_field "$alice" POST /api/v1/contracts "{\"name\":\"x\",\"max_cost_usd\":$m}" "contract max_cost_usd $m" "field 'max_cost_usd'"
done
expect_bad_field "$alice" POST /api/v1/contracts '{"name":"x","colour":"red"}' "unknown field" "'colour'"
req "$alice" POST /api/v1/contracts '{"name":"x",}'
expect_error 400 bad_json "trailing comma"
req "$alice" POST /api/v1/contracts '["name"]'
expect_error 400 bad_json "an array body"
req "$alice" POST /api/v1/contracts '{"name":"x"} {}'
expect_error 400 bad_json "trailing garbage"
expect_bad_field "$alice" POST /api/v1/contracts '{"name":"x\u0000y"}' "NUL in a string"

req "$alice" GET "/api/v1/contracts/$ca"
expect_status 200 "alice reads her contract"
expect_json .name alpha
expect_json '.phases | join(",")' "research,specify,plan,execute,review"
req "$alice" GET /api/v1/contracts
expect_status 200 "alice lists contracts"
expect_json '[.contracts[].owner] | unique | join(",")' alice
expect_json '.contracts | length' 2
req admin GET /api/v1/contracts
expect_json '.contracts | length' 5
req admin GET "/api/v1/contracts?status=active&limit=2&offset=1"
expect_json '.contracts | length' 2
req admin GET "/api/v1/contracts?status=paused"
expect_json '.contracts | length' 0
req admin GET "/api/v1/contracts?status=sleepy"
expect_error 400 invalid_parameter "bad status filter"
req admin GET "/api/v1/contracts?limit=0"
expect_error 400 invalid_parameter "limit 0"
req admin GET "/api/v1/contracts?limit=1001"
expect_error 400 invalid_parameter "limit over 1000"
req admin GET "/api/v1/contracts?offset=-1"
expect_error 400 invalid_parameter "negative offset"
req admin GET "/api/v1/contracts?colour=red"
expect_error 400 invalid_parameter "unknown query parameter"

say "contract changes, phases, events"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"name":"alpha 2","version":1}'
expect_status 200 "rename"
expect_json .name "alpha 2"
expect_json .version 2
req "$alice" PATCH "/api/v1/contracts/$ca" '{"name":"stale","version":1}'
expect_error 409 stale_version "stale version in the body"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"name":"stale"}' -H 'If-Match: "1"'
expect_error 409 stale_version "stale If-Match"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"description":null}' -H 'If-Match: "2"'
expect_status 200 "If-Match current"
expect_json .description null
expect_bad_field "$alice" PATCH "/api/v1/contracts/$cs" '{"max_cost_usd":-3}' "a negative contract cost limit" "field 'max_cost_usd': expected a non-negative number"
req "$alice" PATCH "/api/v1/contracts/$cs" '{"max_cost_usd":0.75}'
expect_status 200 "change a contract's cost limit"
expect_json .max_cost_usd 0.75
[[ "$(store_sql "SELECT max_cost_usd FROM contracts WHERE id = '$cs'")" == 0.75 ]] || fail "the contract's cost limit is not stored"
req "$alice" PATCH "/api/v1/contracts/$cs" '{"max_cost_usd":null}'
expect_status 200 "lift a contract's cost limit"
expect_json .max_cost_usd null
expect_bad_field "$alice" PATCH "/api/v1/contracts/$ca" '{"phase":"plan"}' "phase through PATCH"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"paused"}'
expect_status 200 "pause"
expect_json .status paused
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"completed"}'
expect_error 409 invalid_transition "paused to completed"
expect_message "'paused'.*'completed'"
expect_bad_field "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"done"}' "unknown contract status"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"active"}'
expect_status 200 "resume"
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"specify"}'
expect_status 200 "research to specify"
expect_json .phase specify
v=$(jqr .version)
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"execute"}'
expect_error 409 invalid_transition "skipping a phase"
expect_message "'specify'.*'execute'"
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"specify"}'
expect_error 409 invalid_transition "the same phase"
req "$alice" POST "/api/v1/contracts/$cs/phase" '{"phase":"research"}'
expect_error 409 invalid_transition "a phase not of the type"
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"plan","version":1}'
expect_error 409 stale_version "phase with a stale version"
expect_bad_field "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"nap"}' "unknown phase"
expect_bad_field "$alice" POST "/api/v1/contracts/$ca/phase" '{}' "no phase"
req "$alice" POST "/api/v1/contracts/$ca/phase" "{\"phase\":\"plan\",\"version\":$v}"
expect_status 200 "specify to plan"
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"research"}'
expect_status 200 "back to research"
req "$alice" GET "/api/v1/contracts/$ca/events"
expect_status 200 "contract events"
expect_json '[.events[].type] | join(",")' "created,status,status,phase,phase,phase"
expect_json '[.events[].seq] | join(",")' "1,2,3,4,5,6"
expect_json '.events[1].data.from + ">" + .events[1].data.to' "active>paused"
expect_json '.events[3].data.from + ">" + .events[3].data.to' "research>specify"
req "$alice" GET "/api/v1/contracts/$ca/events?after=4&limit=1"
expect_json '[.events[].seq] | join(",")' "5"
req "$alice" GET "/api/v1/contracts/$ca/events?after=x"
expect_error 400 invalid_parameter "bad after"

say "tasks"
plan_long="Refactor the frobnicator so that every widget is frobbed exactly once, even when the frobnicator restarts
and then write tests."
req "$alice" POST /api/v1/tasks "$(jq -nc --arg p "$plan_long" --arg c "$ca" '{plan:$p, contract_id:$c, repo:"/srv/git/app", base_branch:"main", max_iterations:5}')"
expect_status 201 "alice creates a task"
ta=$(jqr .id)
expect_header Location "/api/v1/tasks/$ta\$"
expect_json .owner alice
expect_json .status pending
expect_json .contract_id "$ca"
expect_json .autonomous_loop true
expect_json .max_iterations 5
expect_json .version 1
name=$(jqr .name)
[[ "$name" == "${plan_long:0:80}" ]] || fail "default name: '$name'"
req "$alice" POST /api/v1/tasks "$(jq -nc --arg c "$ca" --arg t "$ta" '{plan:"child", name:"child", contract_id:$c, parent_task_id:$t, autonomous_loop:false}')"
expect_status 201 "a child task"
tchild=$(jqr .id)
expect_json .parent_task_id "$ta"
expect_json .autonomous_loop false
req "$alice" POST /api/v1/tasks '{"plan":"loose task"}'
expect_status 201 "a task without contract"
tloose=$(jqr .id)
expect_json .autonomous_loop false
expect_json .max_iterations null
expect_json .max_cost_usd null
req "$bob" POST /api/v1/tasks "$(jq -nc --arg c "$cb" '{plan:"bob work", contract_id:$c}')"
expect_status 201 "bob creates a task"
tb=$(jqr .id)
req admin POST /api/v1/tasks '{"plan":"carol work","owner":"carol"}'
expect_status 201 "admin creates a task for carol"
expect_json .owner carol

expect_bad_field "$alice" POST /api/v1/tasks "$(jq -nc --arg c "$cb" '{plan:"sneaky", contract_id:$c}')" "another owner's contract" "field 'contract_id'"
expect_bad_field "$alice" POST /api/v1/tasks "$(jq -nc --arg t "$tb" '{plan:"sneaky", parent_task_id:$t}')" "another owner's parent task" "field 'parent_task_id'"
expect_bad_field "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"contract_id\":\"$nouuid\"}" "a contract that does not exist"
expect_bad_field "$alice" POST /api/v1/tasks '{"name":"no plan"}' "missing plan" "field 'plan' is required"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"  \n "}' "empty plan" "field 'plan'"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":51}' "max_iterations over the hard limit" "field 'max_iterations'.*50"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":-1}' "negative max_iterations" "field 'max_iterations': expected a non-negative integer"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":"5"}' "max_iterations as a string"
for m in -1 -0.5 '"1"' '{}'; do
        expect_bad_field "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"max_cost_usd\":$m}" "task max_cost_usd $m" "field 'max_cost_usd'"
done
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","max_cost_usd":1e400}' "a cost limit out of range" "field 'max_cost_usd'"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","is_supervisor":"yes"}' "is_supervisor not a boolean" "field 'is_supervisor': expected true or false"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","base_branch":"--upload-pack=evil"}' "an option as a branch"
expect_bad_field "$alice" POST /api/v1/tasks '{"plan":"x","status":"done"}' "status on create" "'status'"

req "$alice" GET "/api/v1/tasks/$ta"
expect_status 200 "alice reads her task"
expect_json .plan "$plan_long"
req "$alice" GET /api/v1/tasks
expect_json '.tasks | length' 3
expect_json '[.tasks[].owner] | unique | join(",")' alice
req "$alice" GET "/api/v1/tasks?contract=$ca"
expect_json '.tasks | length' 2
req "$alice" GET "/api/v1/tasks?parent=$ta"
expect_json '[.tasks[].id] | join(",")' "$tchild"
req "$alice" GET "/api/v1/tasks?status=pending&limit=1"
expect_json '.tasks | length' 1
req "$alice" GET "/api/v1/tasks?contract=$cb"
expect_json '.tasks | length' 0
req admin GET /api/v1/tasks
expect_json '.tasks | length' 5
req admin GET "/api/v1/tasks?status=later"
expect_error 400 invalid_parameter "bad task status filter"
req admin GET "/api/v1/tasks?contract=nope"
expect_error 400 invalid_parameter "bad contract filter"

say "task changes"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"name":"renamed","max_iterations":7,"target_branch":"feature/x","version":1}'
expect_status 200 "patch a task"
expect_json .name renamed
expect_json .max_iterations 7
expect_json .target_branch feature/x
expect_json .version 2
req "$alice" PATCH "/api/v1/tasks/$ta" '{"name":"stale","version":1}'
expect_error 409 stale_version "stale task version"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"name":"stale"}' -H 'If-Match: "1"'
expect_error 409 stale_version "stale task If-Match"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"name":"x"}' -H 'If-Match: one'
expect_error 400 invalid_header "bad If-Match"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"done"}'
expect_error 409 invalid_transition "pending to done"
expect_message "'pending'.*'done'"
expect_bad_field "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"finished"}' "unknown task status" "field 'status': expected one of pending, running"
expect_bad_field "$alice" PATCH "/api/v1/tasks/$ta" '{"repo":"/elsewhere"}' "repo cannot change" "'repo'"
expect_bad_field "$alice" PATCH "/api/v1/tasks/$ta" '{"max_iterations":1000}' "max_iterations over the limit on PATCH"
expect_bad_field "$alice" PATCH "/api/v1/tasks/$ta" '{"max_cost_usd":-0.01}' "a negative cost limit on PATCH" "field 'max_cost_usd'"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"max_cost_usd":2}'
expect_status 200 "set a task's cost limit"
expect_json .max_cost_usd 2
req "$alice" PATCH "/api/v1/tasks/$ta" '{"max_cost_usd":0}'
expect_status 200 "lift a task's cost limit"
expect_json .max_cost_usd null
expect_bad_field "$alice" PATCH "/api/v1/tasks/$ta" '{"version":0}' "version 0"
# Only a worker starts a task: the client may not, and here the test plays the worker.
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"running"}'
expect_error 409 invalid_transition "a client sets running"
expect_message "Only a worker"
task_set_status "$ta" running
req "$alice" GET "/api/v1/tasks/$ta"
expect_json .status running

say "files to copy into the worktree"
req "$alice" POST /api/v1/tasks '{"plan":"with files","copy_files":[".env","config/local ü.yml",".secrets/token"]}'
expect_status 201 "a task with copy_files"
tcopy=$(jqr .id)
expect_json '.copy_files | join(",")' '.env,config/local ü.yml,.secrets/token'
req "$alice" GET "/api/v1/tasks/$tcopy"
expect_json '.copy_files | tojson' '[".env","config/local ü.yml",".secrets/token"]'
[[ "$(store_sql "SELECT copy_files FROM tasks WHERE id = '$tcopy'")" == '[".env","config/local ü.yml",".secrets/token"]' ]] ||
        fail "copy_files are not stored as a JSON array"
# None is an empty array to clients, NULL in the store; [] is kept as given.
req "$alice" GET "/api/v1/tasks/$tloose"
expect_json '.copy_files | tojson' '[]'
[[ "$(store_sql "SELECT COUNT(*) FROM tasks WHERE id = '$tloose' AND copy_files IS NULL")" == 1 ]] ||
        fail "a task without copy_files has them not NULL"
for v in null '[]'; do
        req "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"copy_files\":$v}"
        expect_status 201 "copy_files $v"
        expect_json '.copy_files | tojson' '[]'
        [[ "$(store_sql "SELECT COALESCE(copy_files, 'NULL') FROM tasks WHERE id = '$(jqr .id)'")" == "${v/null/NULL}" ]] ||
                fail "copy_files $v is not stored as such"
done
# At most 100 entries.
req "$alice" POST /api/v1/tasks "$(jq -nc '{plan:"x", copy_files:[range(100) | "dir/f\(.)"]}')"
expect_status 201 "100 copy_files"
expect_json '.copy_files | length' 100
expect_json '.copy_files[99]' dir/f99
expect_bad_field "$alice" POST /api/v1/tasks "$(jq -nc '{plan:"x", copy_files:[range(101) | "f\(.)"]}')" "101 copy_files" "^field 'copy_files': expected at most 100 paths, not 101$"
# (The length of one entry is checked below: a body here holds at most 4 KiB.)
# Each bad entry is named: its index, and the path unless it cannot be read.
while IFS='|' read -r entry message; do
        expect_bad_field "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"copy_files\":[\".env\",$entry]}" "copy_files entry $entry" "^field 'copy_files': entry 1$message"
done <<'END'
"/etc/passwd"| '/etc/passwd' is absolute; expected a path relative to the repository$
"../outside.env"| '\.\./outside\.env' leads out of the repository \('\.\.'\)$
"config/../../x"| 'config/\.\./\.\./x' leads out of the repository
"a/.."| 'a/\.\.' leads out of the repository
""| '' must not be empty$
"a//b"| 'a//b' has an empty or '\.' component$
"./x"| '\./x' has an empty or '\.' component$
"dir/"| 'dir/' ends with '/'$
"a\u0000b"| contains NUL$
1|: expected a string, not int$
null|: expected a string, not null$
true|: expected a string, not boolean$
["x"]|: expected a string, not array$
{}|: expected a string, not object$
END
for v in '".env"' 1 '{}'; do
        expect_bad_field "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"copy_files\":$v}" "copy_files $v" "^field 'copy_files': expected an array of paths or null$"
done
# Changed only while the task is pending: the worker copies them when it makes the worktree.
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":[".env.local"],"version":1}'
expect_status 200 "change copy_files"
expect_json '.copy_files | tojson' '[".env.local"]'
expect_json .version 2
expect_bad_field "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":[".env","/root/.ssh/id_rsa"]}' "an absolute path on PATCH" "^field 'copy_files': entry 1 '/root/\.ssh/id_rsa' is absolute"
expect_bad_field "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":["a",2]}' "a number on PATCH" "^field 'copy_files': entry 1: expected a string"
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":null}'
expect_status 200 "clear copy_files"
expect_json '.copy_files | tojson' '[]'
[[ "$(store_sql "SELECT COUNT(*) FROM tasks WHERE id = '$tcopy' AND copy_files IS NULL")" == 1 ]] ||
        fail "cleared copy_files are not NULL"
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":[".env"]}'
expect_status 200 "set copy_files again"
task_set_status "$tcopy" running
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":[".other"]}'
expect_error 409 not_pending "copy_files of a running task"
expect_message "^The task is running; its copy_files can change only while it is pending\.$"
task_set_status "$tcopy" failed
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"copy_files":[".other"]}'
expect_error 409 not_pending "copy_files of a failed task"
req "$alice" GET "/api/v1/tasks/$tcopy"
expect_json '.copy_files | tojson' '[".env"]'
# Other changes of a task that is not pending still go through.
req "$alice" PATCH "/api/v1/tasks/$tcopy" '{"name":"renamed with files"}'
expect_status 200 "rename a failed task with copy_files"
expect_json '.copy_files | tojson' '[".env"]'

say "deletes"
req "$alice" DELETE "/api/v1/tasks/$ta"
expect_error 409 busy "delete a running task"
req "$alice" DELETE "/api/v1/contracts/$ca"
expect_error 409 busy "delete a contract with a running task"
# The status of a task its worker holds is the worker's: PATCH points to the control routes.
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"cancelled","error":"stopped by the test"}'
expect_error 409 task_active "PATCH cancels a running task"
expect_message "POST /api/v1/tasks/$ta/cancel"
req "$alice" POST "/api/v1/tasks/$ta/cancel"
expect_status 202 "cancel a running task"
expect_json .control_request.kind cancel
# …and the worker acts on it.
task_set_status "$ta" cancelled
req "$alice" PATCH "/api/v1/tasks/$ta" '{"error":"stopped by the test"}'
expect_status 200 "set the error of a cancelled task"
expect_json .error "stopped by the test"
v=$(jqr .version)
req "$alice" GET "/api/v1/tasks/$ta/events"
expect_status 200 "task events"
expect_json '[.events[] | .type + ":" + .data.from + ">" + .data.to] | join(",")' "status:pending>running,status:running>cancelled"
req "$alice" GET "/api/v1/tasks/$ta/events?after=1"
expect_json '.events | length' 1
req "$alice" DELETE "/api/v1/tasks/$ta?version=1"
expect_error 409 stale_version "delete with a stale version"
req "$alice" DELETE "/api/v1/tasks/$ta?version=x"
expect_error 400 invalid_parameter "delete with a bad version"
req "$alice" DELETE "/api/v1/tasks/$ta?version=$v"
expect_status 204 "delete a task"
[[ -z "$BODY" ]] || fail "204 with a body"
req "$alice" GET "/api/v1/tasks/$ta"
expect_error 404 not_found "a deleted task"
req "$alice" DELETE "/api/v1/tasks/$ta"
expect_error 404 not_found "delete twice"

say "owner isolation"
for who in "$alice:$cb:$tb" "$bob:$ca:$tloose"; do
        IFS=: read -r tok c t <<<"$who"
        req "$tok" GET "/api/v1/contracts/$c"
        expect_error 404 not_found "GET another owner's contract"
        req "$tok" PATCH "/api/v1/contracts/$c" '{"name":"mine now"}'
        expect_error 404 not_found "PATCH another owner's contract"
        req "$tok" POST "/api/v1/contracts/$c/phase" '{"phase":"specify"}'
        expect_error 404 not_found "phase of another owner's contract"
        req "$tok" GET "/api/v1/contracts/$c/events"
        expect_error 404 not_found "events of another owner's contract"
        req "$tok" DELETE "/api/v1/contracts/$c"
        expect_error 404 not_found "DELETE another owner's contract"
        req "$tok" GET "/api/v1/tasks/$t"
        expect_error 404 not_found "GET another owner's task"
        req "$tok" PATCH "/api/v1/tasks/$t" '{"status":"cancelled"}'
        expect_error 404 not_found "PATCH another owner's task"
        req "$tok" GET "/api/v1/tasks/$t/events"
        expect_error 404 not_found "events of another owner's task"
        req "$tok" DELETE "/api/v1/tasks/$t"
        expect_error 404 not_found "DELETE another owner's task"
        for verb in pause resume interrupt cancel; do
                req "$tok" POST "/api/v1/tasks/$t/$verb"
                expect_error 404 not_found "$verb another owner's task"
        done
        req "$tok" POST "/api/v1/tasks/$t/send" '{"message":"hello"}'
        expect_error 404 not_found "send to another owner's task"
        req "$tok" GET "/api/v1/tasks/$t/diff"
        expect_error 404 not_found "diff of another owner's task"
        req "$tok" GET "/api/v1/tasks/$t/events?follow=1"
        expect_error 404 not_found "follow another owner's task"
done
req "$alice" GET "/api/v1/tasks/$nouuid"
expect_error 404 not_found "a task that never existed"
req admin GET "/api/v1/contracts/$cb"
expect_status 200 "admin sees bob's contract"
req admin GET "/api/v1/tasks/$tloose"
expect_status 200 "admin sees alice's task"
req "$bob" GET "/api/v1/contracts/$cb"
expect_json .name bravo
req "$alice" GET "/api/v1/tasks/$tloose"
expect_json .status pending

say "task control"
# A pending task has no agent: only cancel works, at once, with its status event.
req "$alice" POST /api/v1/tasks '{"plan":"never started"}'
tp=$(jqr .id)
for verb in pause interrupt; do
        req "$alice" POST "/api/v1/tasks/$tp/$verb"
        expect_error 409 not_running "$verb a pending task"
        expect_message "pending"
done
req "$alice" POST "/api/v1/tasks/$tp/resume"
expect_error 409 invalid_transition "resume a pending task"
expect_message "'pending'"
req "$alice" POST "/api/v1/tasks/$tp/send" '{"message":"are you there?"}'
expect_error 409 not_running "send to a pending task"
req "$alice" POST "/api/v1/tasks/$tp/cancel"
expect_status 200 "cancel a pending task"
expect_json .status cancelled
jqr '.completed_at | type == "string"' >/dev/null
[[ -z "$(store_sql "SELECT id FROM control_requests WHERE task_id = '$tp'")" ]] || fail "a control request for a pending task"
req "$alice" GET "/api/v1/tasks/$tp/events"
expect_json '[.events[] | .type + ":" + .data.from + ">" + .data.to] | join(",")' "status:pending>cancelled"
# A final task cannot be controlled.
for verb in pause resume interrupt cancel; do
        req "$alice" POST "/api/v1/tasks/$tp/$verb"
        expect_error 409 invalid_transition "$verb a cancelled task"
        expect_message "'cancelled'"
done
req "$alice" POST "/api/v1/tasks/$tp/send" '{"message":"too late"}'
expect_error 409 invalid_transition "send to a cancelled task"

# A running task: each request is a row for its worker, answered 202.
req "$alice" POST /api/v1/tasks '{"plan":"controlled"}'
tr=$(jqr .id)
task_set_status "$tr" running
declare -A control_ids=()
for verb in pause resume interrupt cancel; do
        req "$alice" POST "/api/v1/tasks/$tr/$verb"
        expect_status 202 "$verb a running task"
        expect_json .control_request.kind "$verb"
        expect_json .control_request.task_id "$tr"
        expect_json .control_request.done_at null
        cid=$(jqr .control_request.id)
        [[ "$cid" =~ $uuid_re ]] || fail "control request id: $cid"
        expect_header Location "/api/v1/control-requests/$cid\$"
        [[ "$(store_sql "SELECT kind FROM control_requests WHERE id = '$cid' AND task_id = '$tr' AND done_at IS NULL")" == "$verb" ]] ||
                fail "no pending '$verb' row for $cid in control_requests"
        control_ids[$verb]=$cid
done
req "$alice" GET "/api/v1/tasks/$tr"
expect_json .status running             # the worker, not the API, changes it
req "$alice" POST "/api/v1/tasks/$tr/send" '{"message":"Please also update the README."}'
expect_status 202 "send a message"
expect_json .control_request.kind message
expect_json .control_request.payload.message "Please also update the README."
cmsg=$(jqr .control_request.id)
[[ "$(store_sql "SELECT payload FROM control_requests WHERE id = '$cmsg'" | jq -r .message)" == "Please also update the README." ]] ||
        fail "the message is not in the row's payload"
req "$alice" POST "/api/v1/tasks/$tr/send"
expect_error 400 bad_json "send without a body"
expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" '{}' "send without a message" "field 'message' is required"
for m in '""' '" \n "' '5' 'null'; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" "{\"message\":$m}" "send with message $m" "field 'message'"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tr/send" '{"message":"x","urgent":true}' "send with an unknown field"
req "$alice" GET "/api/v1/tasks/$tr/pause"
expect_error 405 method_not_allowed "GET on pause"
expect_header Allow '^Allow: POST$'
req "$alice" POST "/api/v1/tasks/$nouuid/pause"
expect_error 404 not_found "pause a task that does not exist"

# The worker marks a request delivered and done; the client reads it back.
cp=${control_ids[pause]}
req "$alice" GET "/api/v1/control-requests/$cp"
expect_status 200 "read a control request"
expect_json .kind pause
expect_json .delivered_at null
expect_json .result null
store_sql "UPDATE control_requests SET delivered_at = $(date +%s%6N), done_at = $(date +%s%6N), result = 'ok' WHERE id = '$cp'"
req "$alice" GET "/api/v1/control-requests/$cp"
expect_json .result ok
jqr '.delivered_at | type == "string"' >/dev/null
jqr '.done_at | type == "string"' >/dev/null
req "$bob" GET "/api/v1/control-requests/$cp"
expect_error 404 not_found "another owner's control request"
req admin GET "/api/v1/control-requests/$cp"
expect_status 200 "admin reads a control request"
req "$alice" GET "/api/v1/control-requests/$nouuid"
expect_error 404 not_found "a control request that does not exist"
req "$alice" GET /api/v1/control-requests/nope
expect_error 404 not_found "a control request id that is no id"

# paused, waiting and interrupted tasks are the worker's too.
for st in paused waiting interrupted; do
        task_set_status "$tr" "$st"
        req "$alice" POST "/api/v1/tasks/$tr/resume"
        expect_status 202 "resume a $st task"
        req "$alice" PATCH "/api/v1/tasks/$tr" '{"status":"cancelled"}'
        if [[ "$st" == interrupted ]]; then
                expect_status 200 "PATCH cancels an interrupted task"
        else
                expect_error 409 task_active "PATCH on a $st task"
        fi
done

say "resume with a higher iteration limit"
# A task that stopped at its limit, as a worker leaves it: resumed with a
# higher one, it is pending again on the same session, worktree and branch.
req "$alice" POST /api/v1/tasks '{"plan":"loop","autonomous_loop":true,"max_iterations":4}'
tl=$(jqr .id)
store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 4, session_id = 'sess-loop',
           worktree = '/var/lib/makima/worktrees/loop', branch = 'makima/loop', base_branch = 'main', cost_usd = 0.5,
           error = 'reached the iteration limit of 4', started_at = 1, completed_at = 2, version = version + 1
           WHERE id = '$tl'"
req "$alice" POST "/api/v1/tasks/$tl/resume"
expect_error 400 invalid_field "resume without max_iterations"
expect_message "field 'max_iterations': required to resume a task that reached its iteration limit"
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{}' "resume with an empty body" "field 'max_iterations'"
for n in 0 3 4; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" "{\"max_iterations\":$n}" "resume with max_iterations $n" "field 'max_iterations': expected more than 4 .* at most 50"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":51}' "resume over the hard limit" "at most 50"
for body in '{"max_iterations":"9"}' '{"max_iterations":-9}' '{"max_iterations":null}'; do
        expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" "$body" "resume with $body" "field 'max_iterations'"
done
expect_bad_field "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9,"now":true}' "resume with an unknown field" "'now'"
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9'
expect_error 400 bad_json "resume with broken JSON"
req "$alice" POST "/api/v1/tasks/$tl/resume" 'max_iterations=9' -H 'Content-Type: application/x-www-form-urlencoded'
expect_error 415 unsupported_media_type "resume with a form"
req "$bob" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}'
expect_error 404 not_found "resume another owner's task"
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}' -H 'If-Match: "1"'
expect_error 409 stale_version "resume with a stale If-Match"
req "$alice" GET "/api/v1/tasks/$tl"
expect_json .status iteration_limit_reached       # nothing refused above wrote anything
expect_json .max_iterations 4

req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":9}'
expect_status 200 "resume with a higher limit"
expect_json .status pending
expect_json .max_iterations 9
expect_json .iteration_count 4
expect_json .session_id sess-loop
expect_json .worktree /var/lib/makima/worktrees/loop
expect_json .branch makima/loop
expect_json .base_branch main
expect_json .cost_usd 0.5
expect_json .error null
expect_json .completed_at null
expect_json '.started_at | type' string
[[ "$(store_sql "SELECT status || ' ' || max_iterations || ' ' || iteration_count || ' ' || session_id || ' ' || worktree
                 FROM tasks WHERE id = '$tl'")" == "pending 9 4 sess-loop /var/lib/makima/worktrees/loop" ]] ||
        fail "the resumed task in the store: $(store_sql "SELECT * FROM tasks WHERE id = '$tl'")"
[[ -z "$(store_sql "SELECT id FROM control_requests WHERE task_id = '$tl'")" ]] || fail "a control request for the resume"
req "$alice" GET "/api/v1/tasks/$tl/events"
expect_json '.events[-1].type' status
expect_json '.events[-1].data | "\(.from)>\(.to) \(.max_iterations)"' "iteration_limit_reached>pending 9"
# Pending now: nothing to resume any more.
req "$alice" POST "/api/v1/tasks/$tl/resume" '{"max_iterations":12}'
expect_error 409 invalid_transition "resume a task that was resumed"
expect_message "'pending'"

# The configured default (10) is the limit of a task without its own.
req "$alice" POST /api/v1/tasks '{"plan":"default limit"}'
tdl=$(jqr .id)
store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 10 WHERE id = '$tdl'"
expect_bad_field "$alice" POST "/api/v1/tasks/$tdl/resume" '{"max_iterations":10}' "resume a default-limit task with the same limit"
req "$alice" POST "/api/v1/tasks/$tdl/resume" '{"max_iterations":50}'
expect_status 200 "resume up to the hard limit"
expect_json .max_iterations 50

# At the hard limit there is nothing higher to give.
for max in 50 0; do
        req "$alice" POST /api/v1/tasks "{\"plan\":\"at the hard limit\",\"max_iterations\":$max}"
        th=$(jqr .id)
        store_sql "UPDATE tasks SET status = 'iteration_limit_reached', iteration_count = 50 WHERE id = '$th'"
        req "$alice" POST "/api/v1/tasks/$th/resume" '{"max_iterations":50}'
        expect_error 409 hard_limit_reached "resume a task at the hard limit (max_iterations $max)"
        expect_message "already at the hard limit of 50"
done

# Every other status: 409 naming it.
for st in done failed cancelled merged; do
        req "$alice" POST /api/v1/tasks "{\"plan\":\"$st task\"}"
        tx=$(jqr .id)
        store_sql "UPDATE tasks SET status = '$st' WHERE id = '$tx'"
        for body in '' '{"max_iterations":20}'; do
                req "$alice" POST "/api/v1/tasks/$tx/resume" "$body"
                expect_error 409 invalid_transition "resume a $st task (${body:-no body})"
                expect_message "'$st'"
        done
done

# A paused task's worker acts on a resume: a request, with or without an
# empty body; a new limit for it is refused, not lost.
req "$alice" POST /api/v1/tasks '{"plan":"paused loop","max_iterations":3}'
tpz=$(jqr .id)
task_set_status "$tpz" running
task_set_status "$tpz" paused
req "$alice" POST "/api/v1/tasks/$tpz/resume"
expect_status 202 "resume a paused task"
expect_json .control_request.kind resume
req "$alice" POST "/api/v1/tasks/$tpz/resume" '{}'
expect_status 202 "resume a paused task with an empty body"
req "$alice" POST "/api/v1/tasks/$tpz/resume" '{"max_iterations":8}'
expect_error 409 task_active "resume a paused task with a new limit"
expect_message "'paused'"
req "$alice" GET "/api/v1/tasks/$tpz"
expect_json .max_iterations 3
expect_json .status paused
[[ "$(store_sql "SELECT COUNT(*) FROM control_requests WHERE task_id = '$tpz' AND kind = 'resume'")" == 2 ]] ||
        fail "resume requests of the paused task"

if (( have_bus )); then
        say "D-Bus"
        [[ "$(busctl --address="$BUS_ADDRESS" get-property org.makima1 /org/makima1 org.makima1.Manager Version)" == "s \"$(curl -s "$API_URL/api/v1/health" | jq -r .version)\"" ]] ||
                fail "the Version property"
        busctl --address="$BUS_ADDRESS" introspect org.makima1 /org/makima1 org.makima1.Manager >"$TMP/introspect" ||
                fail "introspect failed"
        grep -Eq '^\.TaskQueued +signal +s ' "$TMP/introspect" || fail "no TaskQueued(s): $(cat "$TMP/introspect")"
        grep -Eq '^\.ControlQueued +signal +ss ' "$TMP/introspect" || fail "no ControlQueued(ss): $(cat "$TMP/introspect")"
        # Every POST /tasks and every control request sent a signal with its arguments.
        wait_for_file_match "$TMP/signals.json" "\"member\":\"ControlQueued\".*\"$tr\",\"message\""
        signals() {
                jq -rc 'select(.member == "TaskQueued" or .member == "ControlQueued") | [.member] + .payload.data | join(" ")' \
                        "$TMP/signals.json"
        }
        signals | grep -qx "TaskQueued $tr" || fail "no TaskQueued for $tr: $(signals)"
        signals | grep -qx "TaskQueued $tp" || fail "no TaskQueued for $tp"
        # Created, then queued again by the resume.
        [[ "$(signals | grep -cx "TaskQueued $tl")" == 2 ]] || fail "TaskQueued for the resumed $tl: $(signals)"
        [[ "$(signals | grep -c "^ControlQueued $tr ")" == 8 ]] || fail "ControlQueued for $tr: $(signals)"
        for verb in pause resume interrupt cancel message; do
                signals | grep -qx "ControlQueued $tr $verb" || fail "no ControlQueued $verb: $(signals)"
        done
        ! signals | grep -q "^ControlQueued $tp" || fail "a signal for the pending task's cancel"
        kill "$MONITOR_PID"
        wait "$MONITOR_PID" || true
        EXTRA_PIDS=''
fi

say "event streams"
# follow CURL-ARGS… OUT: curl -N on a task's event stream, in the background; sets FOLLOW_PID.
follow() {
        local out=${*: -1}

        curl -sS -N --max-time 60 -D "$out.headers" "${@:1:$#-1}" >"$out" 2>"$out.err" &
        FOLLOW_PID=$!
}
req "$alice" POST /api/v1/tasks '{"plan":"streamed"}'
ts=$(jqr .id)
task_set_status "$ts" running
task_add_event "$ts" assistant '{"text":"first"}'
task_add_event "$ts" tool_use '{"name":"Bash","input":{"command":"make"}}'
follow -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$ts/events?follow=1" "$TMP/sse1"
sse1=$FOLLOW_PID
follow --unix-socket "$API_SOCK" -H 'Last-Event-ID: 2' "http://localhost/api/v1/tasks/$ts/events?follow=1&after=1" "$TMP/sse2"
sse2=$FOLLOW_PID
wait_for_file_match "$TMP/sse1" '^id: 3$'
grep -qi '^content-type: text/event-stream' "$TMP/sse1.headers" || fail "not text/event-stream: $(cat "$TMP/sse1.headers")"
grep -qi '^cache-control: no-cache' "$TMP/sse1.headers" || fail "the stream may be cached"
# Stored events first, each as id, event and one line of data: the event as GET …/events serves it.
req "$alice" GET "/api/v1/tasks/$ts/events"
for seq in 1 2 3; do
        grep -A2 -x "id: $seq" "$TMP/sse1" >"$TMP/frame"
        [[ "$(sed -n 2p "$TMP/frame")" == "event: $(jq -r ".events[$seq - 1].type" <<<"$BODY")" ]] || fail "frame $seq: $(cat "$TMP/frame")"
        [[ "$(sed -n 3p "$TMP/frame" | sed 's/^data: //' | jq -c .)" == "$(jq -c ".events[$seq - 1]" <<<"$BODY")" ]] ||
                fail "data of frame $seq: $(cat "$TMP/frame")"
done
# Last-Event-ID wins over after=.
wait_for_file_match "$TMP/sse2" '^id: 3$'
! grep -q '^id: [12]$' "$TMP/sse2" || fail "Last-Event-ID was not honoured: $(cat "$TMP/sse2")"
# Appended meanwhile: it arrives live on both.
task_add_event "$ts" assistant '{"text":"live"}'
wait_for_file_match "$TMP/sse1" '^data: \{"seq":4,"type":"assistant",.*"data":\{"text":"live"\}\}$' 5
wait_for_file_match "$TMP/sse2" '^id: 4$' 5
kill -0 "$sse1" 2>/dev/null || fail "the stream ended while the task runs"
# A final status ends both streams with "end" after every event; curl ends by itself.
task_set_status "$ts" done
for pid in "$sse1" "$sse2"; do
        rc=0
        wait "$pid" || rc=$?
        (( rc == 0 )) || fail "curl on the stream exited with $rc"
done
for f in "$TMP/sse1" "$TMP/sse2"; do
        [[ "$(grep -E '^(id|event):' "$f" | tail -n 3 | tr '\n' ' ')" == "id: 5 event: status event: end " ]] ||
                fail "the stream does not end with the status event and end: $(cat "$f")"
        [[ "$(tail -n 2 "$f" | head -n 1)" == 'data: {"status":"done"}' ]] || fail "end data: $(tail -n 3 "$f")"
done
# On a finished task the stream gives what there is, then end.
out=$(curl -sS -N --max-time 10 -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$ts/events?follow=1&after=4")
[[ "$(grep -E '^(id|event):' <<<"$out" | tr '\n' ' ')" == "id: 5 event: status event: end " ]] || fail "finished stream: $out"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=1" "" -H 'Last-Event-ID: x'
expect_error 400 invalid_header "a bad Last-Event-ID"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=perhaps"
expect_error 400 invalid_parameter "a bad follow"
req "$alice" GET "/api/v1/tasks/$ts/events?follow=0"
expect_status 200 "follow=0 is the JSON list"
expect_json '.events | length' 5

say "diffs"
repo="$TMP/diff-repo"
git init -q -b trunk "$repo"
printf 'one\n' >"$repo/a.txt"
git -C "$repo" add a.txt
git -C "$repo" -c user.name=t -c user.email=t@example.com commit -q -m init
git -C "$repo" worktree add -q -b makima/task "$TMP/diff-worktree"
wt="$TMP/diff-worktree"
printf 'committed\n' >"$wt/b.txt"
git -C "$wt" add b.txt
git -C "$wt" -c user.name=t -c user.email=t@example.com commit -q -m b
printf 'two\n' >>"$wt/a.txt"
printf 'new\n' >"$wt/untracked.txt"
printf '\xff\xfe not UTF-8\n' >"$wt/binaryish.txt"
req "$alice" POST /api/v1/tasks "$(jq -nc --arg r "$repo" '{plan:"diffed", repo:$r}')"
td=$(jqr .id)
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 no_worktree "diff without a worktree"
store_sql "UPDATE tasks SET worktree = '$wt', branch = 'makima/task' WHERE id = '$td'"
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_status 200 "diff of a worktree (base: the repository's HEAD branch)"
expect_header Content-Type '^Content-Type: text/x-diff'
expect_header Makima-Diff-Truncated '^Makima-Diff-Truncated: 0$'
for f in a.txt b.txt untracked.txt; do
        grep -qx "diff --git a/$f b/$f" <<<"$BODY" || fail "the diff lacks $f: $BODY"
done
grep -qx '+two' <<<"$BODY" || fail "the uncommitted change is missing"
grep -qx '+committed' <<<"$BODY" || fail "the committed change is missing"
grep -qx '+new' <<<"$BODY" || fail "the untracked file's content is missing"
[[ -z "$(git -C "$wt" diff --cached --name-only)" ]] || fail "the diff touched the worktree's index"
git -C "$wt" status --porcelain | grep -q '^?? untracked.txt$' || fail "untracked.txt is no longer untracked"
text_diff=$BODY
req "$alice" GET "/api/v1/tasks/$td/diff?format=json"
expect_status 200 "diff as JSON"
expect_json .truncated false
[[ "$(jq -r .diff <<<"$BODY" | grep -c '^diff --git')" == 4 ]] || fail "JSON diff: $BODY"
jq -r .diff <<<"$BODY" | grep -q $'\xef\xbf\xbd not UTF-8' || fail "bytes that are not UTF-8 are not replaced"
req "$alice" GET "/api/v1/tasks/$td/diff?format=text"
[[ "$BODY" == "$text_diff" ]] || fail "format=text differs"
req "$alice" GET "/api/v1/tasks/$td/diff?format=xml"
expect_error 400 invalid_parameter "diff format xml"
req "$alice" PATCH "/api/v1/tasks/$td" '{"base_branch":"no-such-branch"}'
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 diff_failed "diff against a missing base"
expect_message "no-such-branch"
req "$alice" PATCH "/api/v1/tasks/$td" '{"base_branch":"trunk"}'
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_status 200 "diff against base_branch"
[[ "$BODY" == "$text_diff" ]] || fail "the diff against trunk differs"
# Several at once: each waits for its own git, none blocks the others.
diff_pids=()
for i in 1 2 3; do
        curl -sS -o "$TMP/diff.$i" -H "Authorization: Bearer $alice" "$API_URL/api/v1/tasks/$td/diff" &
        diff_pids+=($!)
done
req anon GET /api/v1/health
expect_status 200 "health while diffs run"
for pid in "${diff_pids[@]}"; do
        wait "$pid" || fail "a parallel diff failed"
done
for i in 1 2 3; do
        [[ "$(cat "$TMP/diff.$i")" == "$text_diff" ]] || fail "parallel diff $i: $(head -c 300 "$TMP/diff.$i")"
done
git -C "$repo" worktree remove --force "$wt"
req "$alice" GET "/api/v1/tasks/$td/diff"
expect_error 409 no_worktree "diff of a removed worktree"

say "notifications"
now=$(date +%s%6N)
store_sql "INSERT INTO notifications (id, owner, task_id, contract_id, level, message, created_at, read_at) VALUES
           ('11111111-1111-4111-8111-111111111111', 'alice', '$td', NULL, 'error', 'The agent is not logged in on worker 1.', $now, NULL),
           ('22222222-2222-4222-8222-222222222222', 'alice', NULL, '$ca', 'info', 'Contract done.', $(( now + 1 )), $(( now + 2 ))),
           ('33333333-3333-4333-8333-333333333333', 'bob', NULL, NULL, 'warning', 'For bob.', $(( now + 3 )), NULL)"
req "$alice" GET /api/v1/notifications
expect_status 200 "alice's notifications"
expect_json '[.notifications[].id[0:1]] | join(",")' "2,1"
expect_json '.notifications[1].message' "The agent is not logged in on worker 1."
expect_json '.notifications[1].level' error
expect_json '.notifications[1].task_id' "$td"
expect_json '.notifications[1].read_at' null
jqr '.notifications[0].read_at | type == "string"' >/dev/null
req "$alice" GET "/api/v1/notifications?unread=1"
expect_json '[.notifications[].id[0:1]] | join(",")' "1"
req "$alice" GET "/api/v1/notifications?limit=1"
expect_json '.notifications | length' 1
req "$bob" GET /api/v1/notifications
expect_json '[.notifications[].owner] | join(",")' bob
req admin GET /api/v1/notifications
expect_json '.notifications | length' 3
req "$alice" GET "/api/v1/notifications?unread=maybe"
expect_error 400 invalid_parameter "unread=maybe"
req "$alice" POST /api/v1/notifications/33333333-3333-4333-8333-333333333333/read
expect_error 404 not_found "read another owner's notification"
req "$alice" POST /api/v1/notifications/11111111-1111-4111-8111-111111111111/read
expect_status 204 "mark read"
req "$alice" POST /api/v1/notifications/11111111-1111-4111-8111-111111111111/read
expect_status 204 "mark read twice"
req "$alice" GET "/api/v1/notifications?unread=true"
expect_json '.notifications | length' 0
req admin POST "/api/v1/notifications/$nouuid/read"
expect_error 404 not_found "read a notification that does not exist"
req admin POST /api/v1/notifications/33333333-3333-4333-8333-333333333333/read
expect_status 204 "admin marks bob's read"
req "$bob" GET "/api/v1/notifications?unread=1"
expect_json '.notifications | length' 0

say "HTTP errors"
req "$alice" GET /api/v1/nothing
expect_error 404 not_found "unknown route"
req anon GET /
expect_error 404 not_found "the root"
req "$alice" GET /api/v1/tasks/not-a-uuid
expect_error 404 not_found "an id that is no id"
req "$alice" PUT /api/v1/tasks '{"plan":"x"}'
expect_error 405 method_not_allowed "PUT on tasks"
expect_header Allow 'GET, HEAD, POST'
req "$alice" POST "/api/v1/tasks/$tloose" '{}'
expect_error 405 method_not_allowed "POST on a task"
expect_header Allow 'GET, HEAD, PATCH, DELETE'
req "$alice" POST /api/v1/tasks '{"plan":"x"}' -H 'Content-Type: text/plain'
expect_error 415 unsupported_media_type "text/plain"
req "$alice" POST /api/v1/tasks '{"plan":"x"}' -H 'Content-Type:'
expect_error 415 unsupported_media_type "no content type"
req "$alice" POST /api/v1/tasks '{"plan":"charset"}' -H 'Content-Type: application/json; charset=utf-8'
expect_status 201 "JSON with a charset"
req "$alice" POST /api/v1/tasks ''
expect_error 400 bad_json "POST without a body"
big=$(head -c 6000 /dev/zero | tr '\0' a)
req "$alice" POST /api/v1/tasks "{\"plan\":\"$big\"}"
expect_error 413 payload_too_large "a body over MaxBodyBytes"
req "$alice" POST /api/v1/tasks "{\"plan\":\"$big\"}" -H 'Transfer-Encoding: chunked'
expect_error 413 payload_too_large "a chunked body over MaxBodyBytes"
req "$alice" POST /api/v1/tasks "{\"plan\":\"${big:0:3000}\"}" -H 'Transfer-Encoding: chunked'
expect_status 201 "a chunked body under the limit"
req "$alice" GET "/api/v1/tasks?limit=$(head -c 9000 /dev/zero | tr '\0' 1)"
expect_error 414 uri_too_long "a long URL"
req "$alice" GET /api/v1/tasks "" -H "X-Padding: $(head -c 9000 /dev/zero | tr '\0' p)"
expect_error 431 headers_too_large "large headers"
req "$alice" GET /api/v1/tasks "" -H "X-A: $(head -c 3000 /dev/zero | tr '\0' p)" \
        -H "X-B: $(head -c 3000 /dev/zero | tr '\0' p)" -H "X-C: $(head -c 3000 /dev/zero | tr '\0' p)"
expect_error 431 headers_too_large "headers large together"

# Errors answered without reading a body keep the connection alive.
out=$(curl -sS -w '%{http_code} %{num_connects}\n' -H "Authorization: Bearer $alice" \
        -o /dev/null "$API_URL/api/v1/nothing" -o /dev/null "$API_URL/api/v1/tasks/$nouuid" \
        -o /dev/null "$API_URL/api/v1/tasks")
[[ "$(tr '\n' ' ' <<<"$out")" == "404 1 404 0 200 0 " ]] || fail "keep-alive across errors: $out"

say "admins on the Unix socket, by peer credentials"
if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
        chmod 0666 "$API_SOCK"
        mkdir "$TMP/nobody"
        chown 65534:65534 "$TMP/nobody"
        # curl as user nobody (with setpriv's group options) on the Unix socket.
        nobody_curl() {
                setpriv --reuid=65534 --regid=65534 "$@" curl -sS -o "$TMP/nobody/body" -D "$TMP/nobody/headers" \
                        -w '%{http_code}' --unix-socket "$API_SOCK" "${curl_args[@]}"
                cp "$TMP/nobody/body" "$TMP/body"
                cp "$TMP/nobody/headers" "$TMP/headers"
        }
        curl_args=(http://localhost/api/v1/contracts)
        STATUS=$(nobody_curl --clear-groups); BODY=$(cat "$TMP/body")
        expect_error 401 unauthorized "an unprivileged peer on the Unix socket"
        curl_args=(-H "Authorization: Bearer $alice" http://localhost/api/v1/contracts)
        STATUS=$(nobody_curl --clear-groups); BODY=$(cat "$TMP/body")
        expect_status 200 "an unprivileged peer with a token"
        expect_json '[.contracts[].owner] | unique | join(",")' alice
        # AdminGroup names a group that does not exist: nobody gets in by it.
        curl_args=(http://localhost/api/v1/contracts)
        STATUS=$(nobody_curl --groups=100); BODY=$(cat "$TMP/body")
        expect_error 401 unauthorized "a peer in an unrelated group"
else
        say "not root: skipping peer credential checks"
fi

say "token revocation"
req admin DELETE "/api/v1/tokens/$alice_token_id"
expect_status 204 "revoke alice's token"
req "$alice" GET /api/v1/tasks
expect_error 401 unauthorized "a revoked token"
req admin DELETE "/api/v1/tokens/$alice_token_id"
expect_status 204 "revoking is idempotent"
req admin DELETE "/api/v1/tokens/$nouuid"
expect_error 404 not_found "revoke a token that never existed"
req admin POST /api/v1/tokens '{"owner":"alice"}'
alice=$(jqr .token)

say "restart"
req admin GET /api/v1/tasks
n_tasks=$(jqr '.tasks | length')
api_stop
api_start
req "$alice" GET "/api/v1/contracts/$ca"
expect_status 200 "alice's contract after a restart"
expect_json .name "alpha 2"
expect_json .phase research
req "$bob" GET "/api/v1/tasks/$tb"
expect_status 200 "bob's task and token after a restart"
expect_json .plan "bob work"
req admin GET /api/v1/tasks
expect_json '.tasks | length' "$n_tasks"
if (( have_bus )); then
        wait_for_bus_name org.makima1   # taken again by the new process
fi

say "admin group"
# The same peer is admin once AdminGroup names a group it is in.
if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
        api_stop
        write_config "AdminGroup=$(getent group 100 | cut -d: -f1)"
        api_start
        chmod 0666 "$API_SOCK"
        curl_args=(http://localhost/api/v1/contracts)
        STATUS=$(nobody_curl --groups=100); BODY=$(cat "$TMP/body")
        expect_status 200 "a peer in AdminGroup"
        expect_json '.contracts | length' 5
fi

say "long copy_files entries"
# The default MaxBodyBytes takes a body with an entry of 4 KiB.
api_stop
write_config
api_start
long=$(printf 'd/%.0s' $(seq 2047))xy
req admin POST /api/v1/tasks "$(jq -nc --arg f "$long" '{plan:"x", copy_files:[".env", $f]}')"
expect_status 201 "a copy_files entry of 4096 bytes"
expect_json '.copy_files[1] | length' 4096
expect_bad_field admin POST /api/v1/tasks "$(jq -nc --arg f "${long}z" '{plan:"x", copy_files:[".env", $f]}')" "a copy_files entry of 4097 bytes" "^field 'copy_files': entry 1 is longer than 4096 bytes$"

say "connection limits"
api_stop
write_config "MaxConnections=3" "ConnectionTimeoutSec=2"
api_start
# An event stream is idle far longer than ConnectionTimeoutSec, yet stays open:
# it waits suspended, and a keepalive comment goes out every 15 s.
req admin POST /api/v1/tasks '{"plan":"watched for long"}'
tk=$(jqr .id)
task_set_status "$tk" running
follow --unix-socket "$API_SOCK" "http://localhost/api/v1/tasks/$tk/events?follow=1&after=1" "$TMP/sse-idle"
sse_idle=$FOLLOW_PID
# Three idle connections fill the TCP socket's slots: the next one waits in
# the backlog, while the Unix socket has its own. The idle timeout frees them.
exec {idle1}<>"/dev/tcp/127.0.0.1/$API_PORT" {idle2}<>"/dev/tcp/127.0.0.1/$API_PORT" {idle3}<>"/dev/tcp/127.0.0.1/$API_PORT"
sleep 0.2
rc=0
curl -sS -o /dev/null --max-time 1 "$API_URL/api/v1/health" 2>/dev/null || rc=$?
(( rc == 28 )) || fail "a connection over MaxConnections was not kept waiting (curl: $rc)"
req admin GET /api/v1/health
expect_status 200 "the Unix socket while TCP is full"
for fd in "$idle1" "$idle2" "$idle3"; do
        # EOF (status 1, nothing read) once makima-api closes it; > 128 would be our own timeout.
        rc=0
        read -r -t 5 -u "$fd" _ || rc=$?
        (( rc == 1 )) || fail "an idle connection was not closed after ConnectionTimeoutSec (read: $rc)"
done
exec {idle1}<&- {idle2}<&- {idle3}<&-
req anon GET /api/v1/health
expect_status 200 "TCP once the idle connections are gone"
wait_for_file_match "$TMP/sse-idle" '^: keepalive$' 20
kill -0 "$sse_idle" 2>/dev/null || fail "the event stream was closed while idle: $(cat "$TMP/sse-idle.err")"
task_add_event "$tk" assistant '{"text":"still here"}'
wait_for_file_match "$TMP/sse-idle" '^id: 2$' 5
kill "$sse_idle"
wait "$sse_idle" || true

say "store failures"
# A store that fails is 500 (its words in the log, not in the answer); a
# store that does not answer makes health 503. makima-api still stops cleanly.
if [[ -n "${MAKIMA_TEST_PG_URL:-}" ]]; then
        pg_dir=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"$MAKIMA_TEST_PG_URL")
        pg_ctl=$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
        [[ -x "$pg_ctl" && -d "$pg_dir/data" ]] || fail "cannot find the test PostgreSQL server"
        runuser -u "$(stat -c %U "$pg_dir/data")" -- "$pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null
        req anon GET /api/v1/health
        expect_error 503 unavailable "health without a server"
        req admin GET /api/v1/tasks
        expect_error 500 internal "a query without a server"
        expect_message '^Internal error\.$'
        grep -q 'store failure' "$TMP/api.log" || fail "the store failure is not in the log"
elif command -v sqlite3 >/dev/null; then
        # Another process holds the write lock past the store's busy timeout.
        { echo 'BEGIN EXCLUSIVE;'; sleep 8; echo 'COMMIT;'; } | sqlite3 "$TMP/makima.db" &
        EXTRA_PIDS=$!
        sleep 0.5
        req admin POST /api/v1/contracts '{"name":"locked out"}'
        expect_error 500 internal "a write while the database is locked"
        expect_message '^Internal error\.$'
        grep -q 'store failure.*locked' "$TMP/api.log" || fail "the store's words are not in the log"
        wait "$EXTRA_PIDS"
        EXTRA_PIDS=''
        req admin GET /api/v1/contracts
        expect_json '[.contracts[].name] | index("locked out")' null
else
        say "sqlite3 is missing: skipping the store failure checks"
fi

api_stop
say "ok"

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives the real makima-api with curl: the routes of tokens, contracts and
# tasks, every error status with its JSON body, owner isolation, optimistic
# locking, state machines, limits, HTTP errors, admins, the D-Bus name on a
# private bus, restart, connection limits, store failures and SIGTERM (task
# control, event streams, diffs, notifications and D-Bus signals are in
# test-api-control.sh). No worker runs: the test writes the store where a
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
# A local repository is alice's to name only once an administrator grants it
# (test-api-repos.sh tests the grants).
req admin POST /api/v1/repos '{"path":"/srv/git/app","owner":"alice"}'
expect_status 201 "grant /srv/git/app to alice"
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

#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives the real makima-api with curl: every route, every error status with
# its JSON body, owner isolation, optimistic locking, state machines, limits,
# tokens, restart and SIGTERM. With --socket-activation, checks instead that
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

api_start

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
req admin POST /api/v1/tokens '{"owner":"-x"}'
expect_error 400 invalid_field "bad owner name"
expect_message "'owner'"
req admin POST /api/v1/tokens '{"description":"nobody"}'
expect_error 400 invalid_field "token without owner"
expect_message "field 'owner' is required"
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
expect_json .version 1
req "$alice" POST /api/v1/contracts '{"name":"simple one","type":"simple"}'
expect_status 201 "a simple contract"
expect_json .phase plan
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
req "$alice" POST /api/v1/contracts '{"name":"x","owner":"bob"}'
expect_error 400 invalid_field "non-admin sets an owner"
expect_message "field 'owner'"
req "$alice" POST /api/v1/contracts '{"name":"x","type":"weird"}'
expect_error 400 invalid_field "bad contract type"
expect_message "field 'type'.*spec, simple, execute"
req "$alice" POST /api/v1/contracts '{"name":""}'
expect_error 400 invalid_field "empty name"
req "$alice" POST /api/v1/contracts '{"description":"no name"}'
expect_error 400 invalid_field "missing name"
expect_message "field 'name' is required"
req "$alice" POST /api/v1/contracts '{"name":"x","colour":"red"}'
expect_error 400 invalid_field "unknown field"
expect_message "'colour'"
req "$alice" POST /api/v1/contracts '{"name":"x",}'
expect_error 400 bad_json "trailing comma"
req "$alice" POST /api/v1/contracts '["name"]'
expect_error 400 bad_json "an array body"
req "$alice" POST /api/v1/contracts '{"name":"x"} {}'
expect_error 400 bad_json "trailing garbage"
req "$alice" POST /api/v1/contracts '{"name":"x\u0000y"}'
expect_error 400 invalid_field "NUL in a string"

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
req "$alice" PATCH "/api/v1/contracts/$ca" '{"phase":"plan"}'
expect_error 400 invalid_field "phase through PATCH"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"paused"}'
expect_status 200 "pause"
expect_json .status paused
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"completed"}'
expect_error 409 invalid_transition "paused to completed"
expect_message "'paused'.*'completed'"
req "$alice" PATCH "/api/v1/contracts/$ca" '{"status":"done"}'
expect_error 400 invalid_field "unknown contract status"
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
req "$alice" POST "/api/v1/contracts/$ca/phase" '{"phase":"nap"}'
expect_error 400 invalid_field "unknown phase"
req "$alice" POST "/api/v1/contracts/$ca/phase" '{}'
expect_error 400 invalid_field "no phase"
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
req "$bob" POST /api/v1/tasks "$(jq -nc --arg c "$cb" '{plan:"bob work", contract_id:$c}')"
expect_status 201 "bob creates a task"
tb=$(jqr .id)
req admin POST /api/v1/tasks '{"plan":"carol work","owner":"carol"}'
expect_status 201 "admin creates a task for carol"
expect_json .owner carol

req "$alice" POST /api/v1/tasks "$(jq -nc --arg c "$cb" '{plan:"sneaky", contract_id:$c}')"
expect_error 400 invalid_field "another owner's contract"
expect_message "field 'contract_id'"
req "$alice" POST /api/v1/tasks "$(jq -nc --arg t "$tb" '{plan:"sneaky", parent_task_id:$t}')"
expect_error 400 invalid_field "another owner's parent task"
expect_message "field 'parent_task_id'"
req "$alice" POST /api/v1/tasks "{\"plan\":\"x\",\"contract_id\":\"$nouuid\"}"
expect_error 400 invalid_field "a contract that does not exist"
req "$alice" POST /api/v1/tasks '{"name":"no plan"}'
expect_error 400 invalid_field "missing plan"
expect_message "field 'plan' is required"
req "$alice" POST /api/v1/tasks '{"plan":"  \n "}'
expect_error 400 invalid_field "empty plan"
expect_message "field 'plan'"
req "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":51}'
expect_error 400 invalid_field "max_iterations over the hard limit"
expect_message "field 'max_iterations'.*50"
req "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":-1}'
expect_error 400 invalid_field "negative max_iterations"
expect_message "field 'max_iterations': expected a non-negative integer"
req "$alice" POST /api/v1/tasks '{"plan":"x","max_iterations":"5"}'
expect_error 400 invalid_field "max_iterations as a string"
req "$alice" POST /api/v1/tasks '{"plan":"x","is_supervisor":"yes"}'
expect_error 400 invalid_field "is_supervisor not a boolean"
expect_message "field 'is_supervisor': expected true or false"
req "$alice" POST /api/v1/tasks '{"plan":"x","base_branch":"--upload-pack=evil"}'
expect_error 400 invalid_field "an option as a branch"
req "$alice" POST /api/v1/tasks '{"plan":"x","status":"done"}'
expect_error 400 invalid_field "status on create"
expect_message "'status'"

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
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"finished"}'
expect_error 400 invalid_field "unknown task status"
expect_message "field 'status': expected one of pending, running"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"repo":"/elsewhere"}'
expect_error 400 invalid_field "repo cannot change"
expect_message "'repo'"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"max_iterations":1000}'
expect_error 400 invalid_field "max_iterations over the limit on PATCH"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"version":0}'
expect_error 400 invalid_field "version 0"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"running"}'
expect_status 200 "pending to running"
expect_json .status running
jqr '.started_at | type == "string"' >/dev/null

say "deletes"
req "$alice" DELETE "/api/v1/tasks/$ta"
expect_error 409 busy "delete a running task"
req "$alice" DELETE "/api/v1/contracts/$ca"
expect_error 409 busy "delete a contract with a running task"
req "$alice" PATCH "/api/v1/tasks/$ta" '{"status":"cancelled","error":"stopped by the test"}'
expect_status 200 "running to cancelled"
expect_json .error "stopped by the test"
jqr '.completed_at | type == "string"' >/dev/null
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
expect_json '.tasks | length' 6

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

say "connection limits"
api_stop
write_config "MaxConnections=3" "ConnectionTimeoutSec=2"
api_start
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

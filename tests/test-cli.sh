#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives a real makima-api with the real makima CLI, the way a person would:
# the contract and task commands in table and --json form, error messages and
# exit codes, unix and http transports with tokens minted by `makima token
# create`, owner isolation, paging, and that --help, the man page and the
# commands agree (controlling tasks, diffs, `task watch` and notifications are
# in test-cli-tasks.sh). No worker runs: the test writes the store where one
# would.
#
# Usage: test-cli.sh PATH/TO/makima-api PATH/TO/makima PATH/TO/makima.1

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MAKIMA=$(realpath "${2:?usage: $0 makima-api makima makima.1}")
MAN_PAGE=${3:?usage: $0 makima-api makima makima.1}

# ---- help, version, man page ----

test_help() {
        local noun verb opt text overview

        MAN_TEXT=$(man_text)
        run 0 --version
        [[ "$OUT" =~ ^makima\ [0-9] ]] || fail "--version: $OUT"

        run 0 --help
        text=$OUT
        overview=$OUT
        for noun in contract task repo token; do
                run 0 "$noun" --help
                text+=$'\n'$OUT
        done
        for verb in "contract create" "contract list" "contract show" "contract phase" "contract delete" \
                    "contract events" "task create" "task list" "task show" "task events" "task cancel" \
                    "task delete" "task watch" "task diff" "task pause" "task resume" "task interrupt" \
                    "task send" "notifications" "repo grant" "repo list" "repo revoke" "token create" \
                    "token delete" "up"; do
                # shellcheck disable=SC2086
                run 0 $verb --help
                [[ "$OUT" == "makima $verb "* ]] || fail "makima $verb --help does not start with its synopsis: $OUT"
                text+=$'\n'$OUT
                # Every command of the help is in the man page, and in the overview.
                man_has "$verb"
                grep -q -- "$verb" <<<"$overview" || fail "makima --help does not list '$verb'"
                # -h works like --help.
                # shellcheck disable=SC2086
                run 0 $verb -h
        done

        # Every option any --help mentions is documented in the man page.
        for opt in $(grep -Eo -- '--[a-z][a-z-]*' <<<"$text" | sort -u); do
                man_has "$opt"
        done
        # …and every option the man page documents exists in some --help.
        for opt in $(grep -Eo -- '--[a-z][a-z-]*' <<<"$MAN_TEXT" | sort -u); do
                grep -q -- "$opt" <<<"$text" || fail "the man page documents $opt, which no --help mentions"
        done
}

# The man page as plain text: roff escapes and font changes removed.
man_text() {
        sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\c$//' -e 's/^\.[A-Z][A-Z]* //' "$MAN_PAGE" | tr -s ' '
}

man_has() {
        grep -qF -- "$1" <<<"$MAN_TEXT" || fail "the man page does not mention '$1'"
}

# ---- usage errors: exit 2 and a hint ----

test_usage() {
        run 2
        err_has '^makima: missing command$'
        err_has "^Try 'makima --help'.$"
        run 2 frobnicate
        err_has "unknown command 'frobnicate'"
        run 2 task
        err_has "Try 'makima task --help'."
        run 2 task frob
        err_has "unknown command 'task frob'"
        run 2 --nope task list
        err_has "unknown option '--nope'"
        run 2 task list --nope
        err_has "unknown option '--nope'"
        err_has "Try 'makima task list --help'."
        run 2 task create
        err_has '^makima: missing PLAN$'
        run 2 task create a b
        err_has "unexpected argument 'b'"
        run 2 task create --repo
        err_has "option '--repo' needs a value"
        run 2 task create --max-iterations x plan
        err_has "max-iterations expects a positive number"
        for usd in abc 0 -1 inf nan 1e3 0x10 '$' . 1.2.3; do
                run 2 task create --max-cost "$usd" plan
                err_has "^makima: --max-cost expects an amount of US dollars above 0, such as 2.50, not '"
        done
        run 2 contract create --max-cost=-2 name
        err_has "max-cost expects an amount of US dollars"
        run 2 task resume --max-iterations 0 "$nouuid"
        err_has "max-iterations expects a positive number, not '0'"
        err_has "Try 'makima task resume --help'."
        run 2 task resume --max-iterations 5
        err_has 'missing ID'
        run 2 task list --status sleeping
        err_has "unknown task status 'sleeping'"
        run 2 task show
        err_has 'missing ID'
        for verb in pause resume interrupt cancel diff watch; do
                run 2 task "$verb"
                err_has 'missing ID'
                err_has "Try 'makima task $verb --help'."
        done
        run 2 task send "$nouuid"
        err_has '^makima: missing ID and MESSAGE$'
        run 2 task send "$nouuid" ' '
        err_has 'the message must not be empty'
        run 2 task pause "$nouuid" extra
        err_has "unexpected argument 'extra'"
        run 2 notifications extra
        err_has "unexpected argument 'extra'"
        run 2 contract create --type weird name
        err_has "unknown contract type 'weird'"
        run 2 contract phase "$nouuid" bogus
        err_has "unknown phase 'bogus'"
        run 2 contract events --after -1 "$nouuid"
        run 2 token create
        err_has -- '--owner=NAME is required'
        run 2 token delete not-an-id
        run 2 up --workers lots
        run 2 --url ftp://example.com task list
        err_has "bad API address 'ftp://example.com'"
        # Nothing on stdout for any of them.
        [[ -z "$OUT" ]] || fail "usage error printed on stdout: $OUT"
}

# ---- transport errors ----

test_cannot_connect() {
        local port

        MAKIMA_API_URL="unix:$TMP/nobody.sock" run 1 task list
        err_is "makima: cannot connect to unix:$TMP/nobody.sock: No such file or directory (is makima-api running? set MAKIMA_API_URL)"
        port=$(free_port)
        run 1 --url "http://127.0.0.1:$port" contract list
        err_is "makima: cannot connect to http://127.0.0.1:$port: Connection refused (is makima-api running? set MAKIMA_API_URL)"
        # --url wins over the environment.
        MAKIMA_API_URL="http://127.0.0.1:$port" run 0 --url "unix:$API_SOCK" contract list
}

# ---- contracts ----

test_contracts() {
        local c c2 short

        run 0 contract create --type simple --description "Port to libfoo 2" --autonomous-loop --max-cost '$12.5' "port libfoo"
        [[ "$OUT" =~ $uuid_re ]] || fail "contract create printed '$OUT', not an id"
        [[ -z "$ERR" ]] || fail "contract create wrote to stderr: $ERR"
        c=$OUT
        short=${c:0:8}
        CONTRACT=$c

        run 0 --json contract create second
        json_is .name second
        json_is .type spec
        json_is .phase research
        json_is .status active
        c2=$(jq -r .id <<<"$OUT")
        same_as_api "/api/v1/contracts/$c2"

        run 0 contract list
        out_has '^ID +NAME +TYPE +PHASE +STATUS +UPDATED$'
        out_has "^$short +port libfoo +simple +plan +active +(now|[0-9]+s ago)$"
        out_has "^${c2:0:8} +second +spec +research +active"
        out_lacks "$c"                  # full ids are not in the table
        run 0 contract list --json
        json_is '.contracts | length' 2
        same_as_api /api/v1/contracts
        run 0 contract list --status completed
        [[ "$OUT" == "No contracts." ]] || fail "empty list: $OUT"
        run 0 contract list --status active --json
        json_is '.contracts | length' 2

        run 0 contract show "$c"
        out_has "^ +id: $c$"
        out_has '^ +name: port libfoo$'
        out_has '^ +description: Port to libfoo 2$'
        out_has '^ +phases: plan → execute → review$'
        out_has '^ +autonomous_loop: yes$'
        out_has '^ +max_cost_usd: \$12\.50$'
        out_has '^ +created_at: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} \((now|[0-9]+s ago)\)$'
        # A unique prefix is as good as the id.
        run 0 contract show --json "$short"
        same_as_api "/api/v1/contracts/$c"
        run 0 --json contract show "$c"
        json_is .autonomous_loop true
        json_is .max_cost_usd 12.5
        run 0 contract show "$c2"
        out_has '^ +max_cost_usd: -$'

        run 0 contract phase "$short" execute
        [[ "$OUT" == "Contract $short is in phase execute." ]] || fail "phase: $OUT"
        run 0 --json contract phase "$c" plan
        json_is .phase plan
        # Skipping ahead is refused by the API: its message, exit 1.
        run 1 contract phase "$c" review
        err_is "makima: contract $c: A contract of type 'simple' cannot go from phase 'plan' to 'review'."
        # A phase the type does not have.
        run 1 contract phase "$c" research
        err_has "^makima: contract $c: .*'research'"

        run 0 contract events "$c"
        out_has '^#1 [0-9-]{10} [0-9:]{8} created '
        out_has '^#2 .* phase plan → execute$'
        out_has '^#3 .* phase execute → plan$'
        run 0 contract events --after 2 "$c"
        out_lacks '^#[12] '
        out_has '^#3 '
        run 0 contract events --json "$c"
        json_is '.events | length' 3
        same_as_api "/api/v1/contracts/$c/events"

        run 1 contract show "$nouuid"
        err_is "makima: contract $nouuid: not found"
        run 1 contract show abcdef0
        err_is "makima: contract abcdef0: not found"

        run 0 contract delete "$c2"
        [[ "$OUT" == "Contract ${c2:0:8} deleted." ]] || fail "delete: $OUT"
        run 1 contract show "$c2"
        err_is "makima: contract $c2: not found"
        run 1 contract delete "$c2"
        err_is "makima: contract $c2: not found"
}

# ---- tasks ----

test_tasks() {
        local t t2 t3 repo indent

        repo="$TMP/work repo"
        mkdir -p "$repo"
        git -C "$repo" init -q

        # A relative --repo is sent as an absolute path; only the id is printed.
        (cd "$(dirname "$TMP")" && "$MAKIMA" task create --repo "$(basename "$TMP")/work repo" --name first \
                --contract "${CONTRACT:0:6}" --base-branch main --autonomous-loop --max-iterations 7 --max-cost 2.5 \
                --copy-file .env --copy-file "config/local ü.yml" \
                $'Fix the build\nthen the tests' >"$TMP/out" 2>"$TMP/err") || fail "task create: $(cat "$TMP/err")"
        OUT=$(cat "$TMP/out")
        [[ "$OUT" =~ $uuid_re ]] || fail "task create printed '$OUT', not only an id"
        t=$OUT
        run 0 task show --json "$t"
        json_is .repo "$(realpath "$repo")"
        json_is .name first
        json_is .contract_id "$CONTRACT"
        json_is .base_branch main
        json_is .autonomous_loop true
        json_is .max_iterations 7
        json_is .max_cost_usd 2.5
        json_is '.copy_files | tojson' '[".env","config/local ü.yml"]'
        json_is .status pending
        same_as_api "/api/v1/tasks/$t"

        # A URL stays as it is.
        run 0 --json task create --repo https://example.com/x.git "second task, no name"
        json_is .repo https://example.com/x.git
        json_is '.copy_files | tojson' '[]'
        t2=$(jq -r .id <<<"$OUT")
        run 0 task create --repo git@example.com:x.git third
        t3=$OUT
        run 0 task show --json "$t3"
        json_is .repo git@example.com:x.git
        run 1 task create --repo "$TMP/missing" plan
        err_is "makima: --repo $TMP/missing: No such file or directory"
        # The API checks the paths to copy and names the one at fault.
        run 1 task create --copy-file .env --copy-file ../../etc/shadow plan
        err_is "makima: task create: field 'copy_files': entry 1 '../../etc/shadow' leads out of the repository ('..')"
        run 1 task create --copy-file /etc/passwd plan
        err_has "entry 0 '/etc/passwd' is absolute"

        run 0 task list
        out_has '^ID +STATUS +ITER +CONTRACT +UPDATED +NAME$'
        out_has "^${t:0:8} +pending +0/7 +${CONTRACT:0:8} +(now|[0-9]+s ago) +first$"
        out_has "^${t2:0:8} +pending +0 +- +.* +second task, no name$"
        run 0 task list --contract "$CONTRACT"
        out_has "^${t:0:8} "
        out_lacks "^${t2:0:8} "
        run 0 task list --json
        json_is '.tasks | length' 3
        same_as_api /api/v1/tasks
        run 0 task list --json --contract "${CONTRACT:0:8}"
        json_is '.tasks | length' 1
        json_is '.tasks[0].id' "$t"

        run 0 task show "${t:0:8}"
        out_has "^ +id: $t$"
        out_has '^ +status: pending$'
        out_has '^ +plan: Fix the build$'
        out_has '^ +then the tests$'
        out_has '^ +iterations: 0/7$'
        out_has '^ +cost: \$0\.00 \(limit \$2\.50\)$'
        out_lacks 'max_iterations|iteration_count|cost_usd'
        # One path a line, under each other.
        out_has '^ +copy_files: \.env$'
        indent=$(grep -E '^ +copy_files: ' <<<"$OUT" | sed 's/\.env$//')
        grep -A1 -E '^ +copy_files: ' <<<"$OUT" | tail -n 1 | grep -Eq "^ {${#indent}}config/local ü\.yml$" ||
                fail "task show: the second path to copy is not on a line of its own: $OUT"
        run 0 task show "$t2"
        out_has '^ +iterations: 0/default$'
        out_has '^ +cost: \$0\.00$'
        out_has '^ +copy_files: -$'

        run 0 task cancel "$t2"
        [[ "$OUT" == "Task ${t2:0:8} cancelled." ]] || fail "cancel: $OUT"
        run 0 task list --status cancelled --json
        json_is '.tasks | length' 1
        json_is '.tasks[0].id' "$t2"
        run 0 task list --status cancelled
        out_has "^${t2:0:8} +cancelled "

        run 0 task events "$t2"
        out_has '^#[0-9]+ [0-9-]{10} [0-9:]{8} [a-z_]+ pending → cancelled$'
        run 0 --json task events "$t2"
        json_is '[.events[].data.to] | last' cancelled
        same_as_api "/api/v1/tasks/$t2/events"
        last=$(jq '.events | last | .seq' <<<"$OUT")
        run 0 task events --after "$last" "$t2"
        [[ -z "$OUT" ]] || fail "events after the last: $OUT"

        # --follow shows events as they come and ends with the task.
        local t4 fpid jpid rc
        run 0 task create "followed"
        t4=$OUT
        "$MAKIMA" task events --follow "$t4" >"$TMP/follow.out" 2>"$TMP/follow.err" &
        fpid=$!
        "$MAKIMA" --json task events -f "${t4:0:8}" >"$TMP/follow.json" 2>&1 &
        jpid=$!
        sleep 0.3
        task_set_status "$t4" running
        for _ in $(seq 50); do grep -q 'pending → running' "$TMP/follow.out" && break; sleep 0.1; done
        grep -q 'pending → running' "$TMP/follow.out" || fail "--follow did not show a new event: $(cat "$TMP/follow.out")"
        kill -0 "$fpid" 2>/dev/null || fail "--follow ended while the task runs"
        task_set_status "$t4" cancelled
        rc=0; wait "$fpid" || rc=$?
        (( rc == 0 )) || fail "--follow exited with $rc: $(cat "$TMP/follow.err")"
        rc=0; wait "$jpid" || rc=$?
        (( rc == 0 )) || fail "--json --follow exited with $rc: $(cat "$TMP/follow.json")"
        [[ "$(grep -c . "$TMP/follow.out")" == 2 ]] || fail "--follow: $(cat "$TMP/follow.out")"
        grep -q '^#2 .* running → cancelled$' "$TMP/follow.out" || fail "--follow: $(cat "$TMP/follow.out")"
        [[ "$(jq -sc 'map(.data.to)' "$TMP/follow.json")" == '["running","cancelled"]' ]] ||
                fail "--json --follow: $(cat "$TMP/follow.json")"
        # On a finished task it prints what there is and ends.
        run 0 task events --follow --after 1 "$t4"
        [[ "$OUT" == "#2 "* && "$(grep -c . <<<"$OUT")" == 1 ]] || fail "--follow on a finished task: $OUT"

        # A failed task cannot be cancelled: the API's word for it, exit 1.
        req admin PATCH "/api/v1/tasks/$t3" '{"status":"failed"}'
        expect_status 200 "fail the task"
        run 1 task cancel "$t3"
        err_is "makima: task $t3: The task is 'failed': it cannot be cancelled any more."
        run 0 --json task cancel "$t"
        json_is .status cancelled

        run 1 task show "$nouuid"
        err_is "makima: task $nouuid: not found"
        run 1 task events "$nouuid"
        err_is "makima: task $nouuid: not found"
        run 0 task delete "$t3"
        [[ "$OUT" == "Task ${t3:0:8} deleted." ]] || fail "delete: $OUT"
        run 1 task delete "$t3"
        err_is "makima: task $t3: not found"

        # Too short to be taken for a prefix: sent as it is.
        run 1 task show ab
        err_is "makima: task ab: not found"
        run 2 task show ../contracts
        err_has "^makima: '../contracts' is not a task id$"
}

# ---- tokens, http, owners ----

test_tokens_and_owners() {
        local alice bob bob_id t_alice t_admin

        run 0 token create --owner alice --description "test laptop"
        alice=$OUT
        [[ -n "$alice" && "$alice" != *$'\n'* ]] || fail "token create printed more than the token: $OUT"
        err_has 'cannot be shown again'
        run 0 --json token create --owner bob
        bob=$(jq -r .token <<<"$OUT")
        bob_id=$(jq -r .id <<<"$OUT")
        json_is .owner bob
        [[ "$bob_id" =~ $uuid_re ]] || fail "token id: $bob_id"

        # Over TCP with a token: the object belongs to the token's owner.
        export MAKIMA_API_URL=$API_URL
        MAKIMA_API_KEY=$alice run 0 task create "alice's work"
        t_alice=$OUT
        MAKIMA_API_KEY=$alice run 0 task show --json "$t_alice"
        json_is .owner alice
        MAKIMA_API_KEY=$alice run 0 task list --json
        json_is '.tasks | length' 1
        MAKIMA_API_KEY=$alice run 0 contract list
        [[ "$OUT" == "No contracts." ]] || fail "alice sees contracts: $OUT"
        # localhost resolves to ::1 and 127.0.0.1: the client tries each address.
        MAKIMA_API_KEY=$alice run 0 --url "http://localhost:$API_PORT" task show "${t_alice:0:8}"

        # Bob sees none of it, not even by prefix.
        MAKIMA_API_KEY=$bob run 0 task list
        [[ "$OUT" == "No tasks." ]] || fail "bob sees tasks: $OUT"
        MAKIMA_API_KEY=$bob run 1 task show "$t_alice"
        err_is "makima: task $t_alice: not found"
        MAKIMA_API_KEY=$bob run 1 task show "${t_alice:0:8}"
        err_is "makima: task ${t_alice:0:8}: not found"
        MAKIMA_API_KEY=$bob run 1 task cancel "$t_alice"
        err_is "makima: task $t_alice: not found"
        for verb in pause diff watch; do
                MAKIMA_API_KEY=$bob run 1 task "$verb" "$t_alice"
                err_is "makima: task $t_alice: not found"
        done
        MAKIMA_API_KEY=$bob run 1 task send "$t_alice" "hi"
        err_is "makima: task $t_alice: not found"
        MAKIMA_API_KEY=$bob run 1 contract show "$CONTRACT"
        err_is "makima: contract $CONTRACT: not found"

        # The admin on the Unix socket sees everyone's.
        unset MAKIMA_API_URL
        export MAKIMA_API_URL="unix:$API_SOCK"
        run 0 task show --json "$t_alice"
        json_is .owner alice
        run 0 task create "root's own"
        t_admin=$OUT
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" task list --json
        jq -e --arg id "$t_admin" 'all(.tasks[]; .id != $id)' <<<"$OUT" >/dev/null || fail "alice sees root's task"

        # Without a token, or with a bad one, over TCP.
        run 1 --url "$API_URL" task list
        err_is "makima: task list: Authentication required: send Authorization: Bearer TOKEN. (set MAKIMA_API_KEY to a token from 'makima token create')"
        MAKIMA_API_KEY=not-a-token run 1 --url "$API_URL" task list
        err_is "makima: task list: The token is not valid or has been revoked."
        MAKIMA_API_KEY=$'a\r\nX-Evil: 1' run 1 --url "$API_URL" task list
        err_has 'MAKIMA_API_KEY'
        # Only administrators mint tokens.
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" token create --owner mallory
        err_has '^makima: token create: This needs an administrator'
        run 1 token create --owner '-bad'
        err_has "^makima: token create: field 'owner'"

        # A revoked token stops working.
        run 0 token delete "$bob_id"
        [[ "$OUT" == "Token ${bob_id:0:8} revoked." ]] || fail "token delete: $OUT"
        MAKIMA_API_KEY=$bob run 1 --url "$API_URL" task list
        err_has 'not valid or has been revoked'
        run 1 token delete "$nouuid"
        err_is "makima: token $nouuid: not found"
}

# ---- repository grants: which local paths an owner's tasks may name ----

test_repos() {
        local alice bob mine theirs g_alice g_bob sub

        run 0 token create --owner alice
        alice=$OUT
        run 0 token create --owner bob
        bob=$OUT
        mine="$TMP/alice's repo"
        theirs="$TMP/bob repo"
        mkdir -p "$mine/sub dir" "$theirs"
        git -C "$mine" init -q
        git -C "$theirs" init -q
        sub="$mine/sub dir"

        # Nothing is granted: an owner may name no local path, and the answer
        # is the same whether the path exists or not.
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --repo "$mine" plan
        err_is "makima: task create: The repository $(realpath "$mine") is not granted to alice: an administrator grants it with \`makima repo grant $(realpath "$mine") --owner alice\`."
        req "$alice" POST /api/v1/tasks '{"plan":"p","repo":"/nonexistent/secret"}'
        [[ "$STATUS" == 403 ]] || fail "a missing path: $STATUS $BODY"
        [[ "$(jq -r .error.message <<<"$BODY")" == "The repository /nonexistent/secret is not granted to alice: an administrator grants it with \`makima repo grant /nonexistent/secret --owner alice\`." ]] ||
                fail "a missing path: $BODY"
        # URLs of anonymous transports are fine; ssh, file:// and scp-like ones are not.
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" task create --repo https://example.com/x.git plan
        for url in file:///etc ssh://example.com/x.git git@example.com:x.git; do
                MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --repo "$url" plan
                err_has "Only an administrator may name $url"
        done
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --repo 'ext::sh -c touch% /tmp/x' plan
        err_has "field 'repo': expected an absolute path or a git URL"

        # Only an administrator grants.
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" repo grant --owner alice "$mine"
        err_has '^makima: repo grant: This needs an administrator'
        run 2 repo grant "$mine"
        err_has -- '--owner=NAME is required'
        run 1 repo grant --owner alice "$TMP/missing"
        err_is "makima: $TMP/missing: No such file or directory"
        run 1 repo grant --owner -bad "$mine"
        err_has "field 'owner'"

        # A relative path is sent absolute, symbolic links resolved.
        ln -s "$mine" "$TMP/link"
        (cd "$TMP" && "$MAKIMA" repo grant --owner alice link >"$TMP/out" 2>"$TMP/err") || fail "repo grant: $(cat "$TMP/err")"
        [[ "$(cat "$TMP/out")" == "$(realpath "$mine") granted to alice." ]] || fail "repo grant: $(cat "$TMP/out")"
        run 1 repo grant --owner alice "$mine"
        err_is "makima: repo grant: $(realpath "$mine") is granted to alice already."
        run 0 --json repo grant --owner bob "$mine"
        json_is .owner bob
        g_bob=$(jq -r .id <<<"$OUT")
        run 0 repo grant --owner bob "$theirs"

        # The grant covers the path and what is below it, nothing beside it.
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" task create --repo "$mine" plan
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" task create --repo "$sub" plan
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --repo "$theirs" plan
        err_has "is not granted to alice"
        req "$alice" POST /api/v1/tasks "$(jq -nc --arg r "$mine/../bob repo" '{plan:"p",repo:$r}')"
        [[ "$STATUS" == 403 ]] || fail "a path that leaves the grant with ..: $STATUS $BODY"
        req "$alice" POST /api/v1/tasks "$(jq -nc --arg r "${mine}x" '{plan:"p",repo:$r}')"
        [[ "$STATUS" == 403 ]] || fail "a sibling that starts with the grant's path: $STATUS $BODY"

        # Lists: the administrator sees all, an owner its own.
        run 0 repo list
        out_has '^ID +OWNER +PATH +GRANTED$'
        [[ $(grep -c "$TMP" <<<"$OUT") == 3 ]] || fail "repo list: $OUT"
        run 0 --json repo list --owner bob
        json_is '[.repos[].owner] | unique | tojson' '["bob"]'
        json_is '.repos | length' 2
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" --json repo list
        json_is '.repos | length' 1
        json_is '.repos[0].path' "$(realpath "$mine")"
        g_alice=$(jq -r '.repos[0].id' <<<"$OUT")
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" --json repo list --owner bob
        json_is '[.repos[].owner] | unique | tojson' '["alice"]'

        # Revoking: by path (which owner, when two have it), or by id.
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" repo revoke "$g_alice"
        err_has 'This needs an administrator'
        run 2 repo revoke "$mine"
        err_has "is granted to 2 owners: say whose with --owner=NAME"
        run 0 repo revoke --owner alice "$mine"
        [[ "$OUT" == "Grant ${g_alice:0:8} revoked." ]] || fail "repo revoke: $OUT"
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --repo "$mine" plan
        err_has "is not granted to alice"
        MAKIMA_API_KEY=$bob run 0 --url "$API_URL" task create --repo "$mine" plan
        run 0 repo revoke "${g_bob:0:8}"
        run 1 repo revoke "$g_bob"
        err_is "makima: grant $g_bob: not found"
        run 1 repo revoke --owner alice "$mine"
        err_is "makima: $mine: not granted to alice"
        run 2 repo revoke --owner bob "$g_bob"
        err_has -- '--owner goes with a path'
        run 0 repo revoke "$theirs"
        run 0 repo list
        [[ "$OUT" == "No repository grants." ]] || fail "repo list after revoking all: $OUT"

        # An administrator names any path.
        run 0 task create --repo "$theirs" plan
}

# ---- per-task sandbox limits ----

test_limits() {
        local alice

        run 0 --json task create --tasks-max 64 --memory-max 512M --cpu-weight 50 plan
        json_is .tasks_max 64
        json_is .memory_max $(( 512 << 20 ))
        json_is .cpu_weight 50
        run 2 task create --tasks-max 0 plan
        err_has -- '--tasks-max expects a number from 1 to 4194304'
        run 2 task create --memory-max 12X plan
        err_has -- "--memory-max expects a size from 1M to 1048576G, such as 2G, not '12X'"
        run 2 task create --memory-max 1K plan
        err_has -- '--memory-max expects a size'
        run 2 task create --cpu-weight 10001 plan
        err_has -- '--cpu-weight expects a number from 1 to 10000'
        # An owner may lower the configured limits, not raise them; an administrator may.
        run 0 token create --owner carol
        alice=$OUT
        MAKIMA_API_KEY=$alice run 0 --url "$API_URL" task create --tasks-max 8 --memory-max 64M --cpu-weight 10 plan
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --tasks-max 513 plan
        err_is "makima: task create: field 'tasks_max': at most 512 ([Sandbox] TasksMax=) for an owner"
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --memory-max 5G plan
        err_has "field 'memory_max': at most"
        MAKIMA_API_KEY=$alice run 1 --url "$API_URL" task create --cpu-weight 101 plan
        err_has "field 'cpu_weight': at most 100"
        run 0 task create --tasks-max 10000 --memory-max 16G --cpu-weight 1000 plan
}

# ---- output details ----

test_output() {
        # No colors when stdout is not a terminal; colors when it is (script gives us one).
        run 0 task list
        [[ "$OUT" != *$'\e['* ]] || fail "colors on a pipe"
        if command -v script >/dev/null; then
                MAKIMA_API_URL="unix:$API_SOCK" script -qec "$MAKIMA task list" /dev/null >"$TMP/tty" 2>&1 ||
                        fail "makima under script failed: $(cat "$TMP/tty")"
                grep -q $'\e\\[' "$TMP/tty" || fail "no colors on a terminal"
                MAKIMA_API_URL="unix:$API_SOCK" NO_COLOR=1 script -qec "$MAKIMA task list" /dev/null >"$TMP/tty" 2>&1
                ! grep -q $'\e\\[' "$TMP/tty" || fail "colors despite NO_COLOR"
        fi
        # --json is valid JSON for every list, even when empty.
        run 0 --json contract list --status failed
        json_is '.contracts | length' 0
}

# ---- lists and event logs longer than one page (the API gives at most 1000) ----

test_paging() {
        local before c i phase

        run 0 --json contract list
        before=$(jq '.contracts | length' <<<"$OUT")
        for i in $(seq 1001); do
                printf -- '--next\n--unix-socket "%s"\n-sf\n-o /dev/null\n-H "Content-Type: application/json"\n' "$API_SOCK"
                printf -- '--data-binary "{\\"name\\":\\"bulk %d\\",\\"type\\":\\"simple\\"}"\n' "$i"
                printf -- 'url = "http://localhost/api/v1/contracts"\n'
        done >"$TMP/bulk.curl"
        curl -K "$TMP/bulk.curl" || fail "creating 1001 contracts failed"
        run 0 --json contract list
        json_is '.contracts | map(.id) | unique | length' $(( before + 1001 ))
        run 0 contract list
        [[ $(wc -l <<<"$OUT") == $(( before + 1002 )) ]] || fail "the table has $(wc -l <<<"$OUT") lines"

        run 0 --json contract list
        c=$(jq -r '.contracts[] | select(.name == "bulk 1") | .id' <<<"$OUT")
        for i in $(seq 1001); do
                if (( i % 2 )); then phase=execute; else phase=plan; fi
                printf -- '--next\n--unix-socket "%s"\n-sf\n-o /dev/null\n-H "Content-Type: application/json"\n' "$API_SOCK"
                printf -- '--data-binary "{\\"phase\\":\\"%s\\"}"\n' "$phase"
                printf -- 'url = "http://localhost/api/v1/contracts/%s/phase"\n' "$c"
        done >"$TMP/phases.curl"
        curl -K "$TMP/phases.curl" || fail "1001 phase changes failed"
        run 0 contract events "$c"
        [[ $(wc -l <<<"$OUT") == 1002 ]] || fail "contract events printed $(wc -l <<<"$OUT") lines, expected 1002"
        [[ "$(cut -d' ' -f1 <<<"$OUT" | tr -d '#')" == "$(seq 1002)" ]] || fail "events are not #1..#1002 in order"
        run 0 --json contract events --after 1 "$c"
        json_is '[.events[].seq] == [range(2; 1003)]' true
        # A prefix is found beyond the first page too.
        run 0 contract show "${c:0:8}"
        out_has "^ +id: $c$"
}

lib_init "$1"
api_start
export MAKIMA_API_URL="unix:$API_SOCK"
unset MAKIMA_API_KEY

test_help
test_usage
test_cannot_connect
test_contracts
test_tasks
test_tokens_and_owners
test_repos
test_limits
test_output
test_paging

api_stop
say "ok"

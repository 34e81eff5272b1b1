#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-api when its store's disk is full, for real: in a mount namespace
# of the test's own, the store lives on a small tmpfs that the test fills
# with a file until writes fail. Every write is answered 507 with
# {"error":{"code":"store_full",…}}, reads go on working, /api/v1/health
# answers 503 with "store_writable": false; once the file is deleted, writes
# work again, nothing written before is changed and the database passes its
# integrity check.
#
# On SQLite the database file is on the tmpfs. On PostgreSQL (run again under
# with-postgresql.sh, started inside the namespace) makima's database is in
# a tablespace on the tmpfs while the server's WAL stays on a disk with room:
# a server whose WAL cannot be written stops (PANIC), which is not what this
# tests. PostgreSQL extends a table only when its pages are full, so there
# the disk is filled while makima's tables are still empty.
#
# Usage: test-api-store-full.sh [--postgresql] makima-api
# Needs root (mount namespace, tmpfs) and sqlite3, and for --postgresql the
# server (see with-postgresql.sh); skips (77) otherwise.
set -euo pipefail

if [[ -z "${MAKIMA_TEST_IN_NAMESPACE:-}" ]]; then
        [[ "$(id -u)" == 0 ]] && command -v unshare >/dev/null && command -v sqlite3 >/dev/null ||
                { echo "test-api-store-full.sh: needs root, unshare and sqlite3, skipping" >&2; exit 77; }
        MAKIMA_TEST_IN_NAMESPACE=1 exec unshare --mount --propagation private "$0" "$@"
fi
# The server must see the tmpfs, so it is started inside the namespace.
if [[ "${1:-}" == --postgresql ]]; then
        shift
        exec "$(dirname "$0")/with-postgresql.sh" "$0" "$@"
fi

# shellcheck source=tests/lib.sh
source "$(dirname "$0")/lib.sh"

lib_init "$1"
unset MAKIMA_BUS_ADDRESS
FULL="$TMP/full"

cleanup() {
        local rc=$?

        trap - EXIT
        if [[ -n "$API_PID" ]]; then
                kill -TERM "$API_PID" 2>/dev/null || true
                wait "$API_PID" 2>/dev/null || true
                API_PID=''
        fi
        umount -l "$FULL" 2>/dev/null || true
        # lib_cleanup takes the exit status from $?.
        set +e
        (exit "$rc")
        lib_cleanup
}
trap cleanup EXIT
mkdir "$FULL"
mount -t tmpfs -o size=16m,mode=0755 tmpfs "$FULL"

if [[ -n "${MAKIMA_TEST_PG_URL:-}" ]]; then
        # The server runs as its own user: the tablespace must be its.
        chown "$(stat -c %U "$(sed 's/.*host=\([^ ]*\).*/\1/' <<<"$MAKIMA_TEST_PG_URL")")" "$FULL"
        psql -X -q -v ON_ERROR_STOP=1 -d "$MAKIMA_TEST_PG_URL" -c "CREATE TABLESPACE makima_full LOCATION '$FULL'" ||
                fail "CREATE TABLESPACE failed"
        psql -X -q -v ON_ERROR_STOP=1 -d "$MAKIMA_TEST_PG_URL" -c "CREATE DATABASE makima TABLESPACE makima_full" ||
                fail "CREATE DATABASE failed"
        MAKIMA_TEST_PG_URL=${MAKIMA_TEST_PG_URL/dbname=postgres/dbname=makima}
        write_config
else
        printf '[Store]\nBackend=sqlite\nPath=%s/makima.db\n\n[API]\n' "$FULL" >"$TMP/makima.conf"
fi

store() {
        if [[ -n "${MAKIMA_TEST_PG_URL:-}" ]]; then
                psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$MAKIMA_TEST_PG_URL" -c "$1"
        else
                sqlite3 -cmd '.timeout 5000' "$FULL/makima.db" "$1"
        fi
}

# Every table's rows, in a stable order, to compare before and after.
dump() {
        local t

        for t in contracts tasks task_events contract_events api_tokens control_requests notifications; do
                echo "== $t"
                store "SELECT * FROM $t ORDER BY 1, 2"
        done
}

fill() {
        local k

        if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]]; then
                # No room left in the WAL either: every write needs new space.
                for k in $(seq 50); do
                        [[ "$(store 'PRAGMA wal_checkpoint(TRUNCATE)')" == 0\|0\|0 ]] && break
                        sleep 0.1
                done
        fi
        dd if=/dev/zero of="$FULL/fill" bs=4096 status=none 2>/dev/null || true
        [[ "$(df --output=avail -B1 "$FULL" | tail -n 1 | tr -d ' ')" == 0 ]] || fail "the tmpfs is not full"
}

# expect_full WHAT: the answer is 507 store_full, and says so in words.
expect_full() {
        expect_error 507 store_full "$1"
        expect_message 'store is full'
}

api_start
req admin GET /api/v1/health
expect_status 200 "health"
expect_json .status ok

# Something to keep: on SQLite a contract, tasks with events, a token. On
# PostgreSQL makima's tables stay empty (see the top).
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]]; then
        req admin POST /api/v1/tokens '{"owner": "alice"}'
        expect_status 201 "token"
        TOKEN=$(jqr .token)
        req admin POST /api/v1/contracts '{"name": "kept", "owner": "alice"}'
        expect_status 201 "contract"
        CONTRACT=$(jqr .id)
        req "$TOKEN" POST /api/v1/tasks "{\"plan\": \"kept\", \"contract_id\": \"$CONTRACT\"}"
        expect_status 201 "task"
        TASK=$(jqr .id)
        req "$TOKEN" PATCH "/api/v1/tasks/$TASK" '{"name": "renamed"}'
        expect_status 200 "patch"
        req admin POST /api/v1/tasks '{"plan": "another"}'
        expect_status 201 "task"
        OTHER=$(jqr .id)
        # One that a worker runs, as far as the API can tell.
        req admin POST /api/v1/tasks '{"plan": "running"}'
        expect_status 201 "task"
        RUNNING=$(jqr .id)
        store "UPDATE tasks SET status = 'running', version = version + 1 WHERE id = '$RUNNING'"
fi
dump >"$TMP/before"

fill
say "the store is full"

req admin POST /api/v1/tasks '{"plan": "no room"}'
expect_full "create a task"
req admin POST /api/v1/contracts '{"name": "no room"}'
expect_full "create a contract"
req admin POST /api/v1/tokens '{"owner": "bob"}'
expect_full "create a token"
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]]; then
        req "$TOKEN" PATCH "/api/v1/tasks/$TASK" '{"name": "no room"}'
        expect_full "rename a task"
        req admin POST "/api/v1/tasks/$OTHER/cancel"
        expect_full "cancel a task"
        req admin DELETE "/api/v1/tasks/$OTHER"
        expect_full "delete a task"
        req admin PATCH "/api/v1/contracts/$CONTRACT" '{"description": "no room"}'
        expect_full "change a contract"
        req admin POST "/api/v1/tasks/$RUNNING/pause"
        expect_full "pause a running task (a control request)"
        # Reads go on: what is stored can still be looked at.
        req "$TOKEN" GET "/api/v1/tasks/$TASK"
        expect_status 200 "read a task"
        expect_json .name renamed
        req admin GET "/api/v1/tasks/$TASK/events"
        expect_status 200 "read events"
fi
req admin GET /api/v1/tasks
expect_status 200 "list tasks"

# A monitor sees it: not 200, and why.
for transport in admin anon; do
        req "$transport" GET /api/v1/health
        expect_error 503 store_full "health"
        expect_json .status unavailable
        expect_json .store_writable false
        expect_message 'store is full'
done
# HEAD, as monitors often ask.
[[ "$(curl -s -o /dev/null -I -w '%{http_code}' "$API_URL/api/v1/health")" == 503 ]] || fail "HEAD /health is not 503"

say "space freed"
rm -f "$FULL/fill"
ok=0
for _ in $(seq 100); do
        req admin GET /api/v1/health
        if [[ "$STATUS" == 200 ]]; then
                ok=1
                break
        fi
        sleep 0.1
done
((ok)) || fail "/health does not say ok after the space was freed"
expect_json .store_writable true
expect_json .status ok

dump >"$TMP/after"
diff -u "$TMP/before" "$TMP/after" >&2 || fail "the store changed while it was full"
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]]; then
        [[ "$(store 'PRAGMA integrity_check')" == ok ]] || fail "integrity_check failed"
        req "$TOKEN" PATCH "/api/v1/tasks/$TASK" '{"name": "room again"}'
        expect_status 200 "rename after the space was freed"
        req admin DELETE "/api/v1/tasks/$OTHER"
        expect_status 204 "delete after the space was freed"
else
        # amcheck verifies every B-tree index against its table.
        store "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null || fail "amcheck is missing"
        store "SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace" \
                >/dev/null || fail "an index does not match its table"
        store "VACUUM ANALYZE" || fail "VACUUM failed"
fi
req admin POST /api/v1/tasks '{"plan": "room again"}'
expect_status 201 "create a task after the space was freed"
req admin POST /api/v1/contracts '{"name": "room again"}'
expect_status 201 "create a contract after the space was freed"

api_stop
if [[ -z "${MAKIMA_TEST_PG_URL:-}" ]]; then
        [[ "$(store 'PRAGMA integrity_check')" == ok ]] || fail "integrity_check failed at the end"
fi
say "PASS"

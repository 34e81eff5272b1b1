#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs a command against a throwaway PostgreSQL server: initdb in a temporary
# directory, a server listening only on a Unix socket there, the command with
# MAKIMA_TEST_PG_URL pointing at it, then the server stopped and the
# directory removed. Exits 77 (skipped) when PostgreSQL is not installed,
# unless MAKIMA_TEST_PG_REQUIRED=1.
set -eu

if [ $# -eq 0 ]; then
        echo "usage: $0 COMMAND [ARG...]" >&2
        exit 2
fi

initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$initdb" ] || [ ! -x "$initdb" ]; then
        initdb=$(command -v initdb || true)
fi
if [ -z "$initdb" ]; then
        echo "with-postgresql: initdb not found" >&2
        [ "${MAKIMA_TEST_PG_REQUIRED:-0}" = 1 ] && exit 1
        exit 77
fi
bindir=$(dirname "$initdb")

dir=$(mktemp -d "${TMPDIR:-/tmp}/makima-pg.XXXXXX")

# initdb and postgres refuse to run as root: run them as postgres then (or
# nobody, where the packages did not create that user).
server_user=postgres
id -u postgres >/dev/null 2>&1 || server_user=nobody
as_server() {
        if [ "$(id -u)" = 0 ]; then
                runuser -u "$server_user" -- "$@"
        else
                "$@"
        fi
}

cleanup() {
        rc=$?
        if [ -f "$dir/data/postmaster.pid" ]; then
                as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$dir"
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" = 0 ]; then
        chown "$server_user" "$dir"
fi
chmod 0700 "$dir"

if ! as_server "$initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
fi

# No TCP at all; fsync off: the data is thrown away anyway.
if ! as_server "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off -c full_page_writes=off" \
        start >/dev/null; then
        cat "$dir/server.log" >&2
        exit 1
fi

export MAKIMA_TEST_PG_URL="host=$dir dbname=postgres user=postgres"
set +e
"$@"
rc=$?
set -e
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        echo "with-postgresql: server log:" >&2
        tail -n 50 "$dir/server.log" >&2
fi
exit $rc

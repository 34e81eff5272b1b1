#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# makima-api stops at once on SIGTERM, whatever its clients are doing: event
# streams waiting for events and diffs waiting for their git (suspended
# connections, the diffs with a forked child each), a request whose headers
# are half sent, a body half uploaded. It must exit within 10 s, with status
# 0 (under sanitizers: nothing leaked on the way out), use little CPU doing
# so, and leave no child behind.
#
# Usage: test-api-shutdown.sh PATH/TO/makima-api

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lib_init "${1:-}"
command -v sqlite3 >/dev/null || { say "sqlite3 is missing, skipping"; exit 77; }

# A bwrap that, asked to run the diff's first git command, notes its pid and
# hangs: at SIGTERM each diff's child still waits for it. Anything else is
# the real bwrap (makima runs every git in one).
real_bwrap=$(command -v bwrap) || { say "bwrap is missing, skipping"; exit 77; }
mkdir "$TMP/bin"
cat >"$TMP/bin/bwrap" <<EOF
#!/bin/sh
case " \$* " in
*" rev-parse "*) echo \$\$ >>"$TMP/hanging-git"; exec sleep 300 ;;
esac
exec "$real_bwrap" "\$@"
EOF
chmod +x "$TMP/bin/bwrap"
# bwrap runs as the agents' user where there is one.
touch "$TMP/hanging-git"
chmod 0666 "$TMP/hanging-git"
PATH="$TMP/bin:$PATH" api_start

req admin POST /api/v1/tokens '{"owner":"alice"}'
expect_status 201 "token for alice"
alice=$(jqr .token)
req admin POST /api/v1/tasks '{"plan":"followed"}'
ts=$(jqr .id)
task_set_status "$ts" running
git init -q -b trunk "$TMP/repo"
git -C "$TMP/repo" -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init
req admin POST /api/v1/tasks "$(jq -nc --arg r "$TMP/repo" '{plan:"diffed", repo:$r, base_branch:"trunk"}')"
td=$(jqr .id)
wt=$(make_task_repo "$TMP/repo" trunk "$td")
store_sql "UPDATE tasks SET worktree = '$wt' WHERE id = '$td'"

clients=()
for i in 1 2; do
        follow --unix-socket "$API_SOCK" "http://localhost/api/v1/tasks/$ts/events?follow=1" "$TMP/stream.$i"
        clients+=("$FOLLOW_PID")
        wait_for_file_match "$TMP/stream.$i.headers" '^HTTP/1.1 200'
done
for i in 1 2; do
        curl -sS --max-time 60 -o "$TMP/diff.$i" --unix-socket "$API_SOCK" "http://localhost/api/v1/tasks/$td/diff" \
                2>"$TMP/diff.$i.err" &
        clients+=($!)
done
for _ in $(seq 200); do
        [[ "$(wc -l 2>/dev/null <"$TMP/hanging-git")" == 2 ]] && break
        sleep 0.05
done
[[ "$(wc -l 2>/dev/null <"$TMP/hanging-git")" == 2 ]] || fail "the diffs did not start their git"
exec {half}<>"/dev/tcp/127.0.0.1/$API_PORT"
printf 'GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n' >&"$half"
exec {upload}<>"/dev/tcp/127.0.0.1/$API_PORT"
printf 'POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"plan":"' \
        "$alice" >&"$upload"
# Answered after the two above arrived: makima-api has accepted them.
req anon GET /api/v1/health
expect_status 200 "health with every client waiting"

# CPU time in clock ticks (utime + stime), also readable while a zombie.
cpu_ticks() {
        awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null
}

# Whether PID exists and is not a zombie (whoever reaps it may take its time).
running() {
        [[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" =~ ^[^Z]$ ]]
}
pid=$API_PID
before=$(cpu_ticks "$pid")
after=$before
start=$(date +%s%N)
kill -TERM "$pid"
while :; do
        t=$(cpu_ticks "$pid") || t=
        [[ -n "$t" ]] || break
        after=$t
        running "$pid" || break
        if (( $(date +%s%N) - start >= 10000000000 )); then
                # SIGTERM again would not end it: lib_cleanup must not wait for that.
                kill -KILL "$pid"
                wait "$pid" || true
                API_PID=''
                fail "makima-api ran on 10 s after SIGTERM, using $(( after - before )) ticks of CPU since"
        fi
        sleep 0.05
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
rc=0
wait "$pid" || rc=$?
API_PID=''
(( rc == 0 )) || fail "makima-api exited with $rc after SIGTERM"
ticks=$(( after - before ))
(( ticks * 1000 / $(getconf CLK_TCK) < 2000 )) || fail "makima-api used $ticks ticks of CPU to stop"

while read -r git_pid; do
        ! running "$git_pid" || fail "a diff's git (pid $git_pid) outlived makima-api"
done <"$TMP/hanging-git"
for c in "${clients[@]}"; do
        wait "$c" || true
done
exec {half}>&- {upload}>&-
say "exited ${ms} ms after SIGTERM, using $ticks ticks of CPU, with 2 streams, 2 diffs, a half request and an upload open"
say "ok"

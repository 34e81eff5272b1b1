# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# bench/lib.sh: what the benchmarks' run.sh share, sourced after they set
# bench_name and keep: messages, checks of their executables and tools, a
# temporary directory removed (with the processes started in it) on exit, a
# private D-Bus, makima-api and makima-worker started and waited for, a
# repository, and a free loopback port.

# shellcheck disable=SC2154 # bench_name and keep are the caller's

say() { printf 'bench/%s: %s\n' "$bench_name" "$*" >&2; }
die() { say "$*"; exit 1; }

# bench_executables VAR...: the named variables must each hold an
# executable; they are made absolute (the servers run elsewhere).
bench_executables() {
        local -n bin
        for bin in "$@"; do
                [[ -x "$bin" ]] || die "$bin is not an executable"
        done
        for bin in "$@"; do
                bin=$(realpath "$bin")
        done
}

# bench_need_tools COMMAND:PACKAGE...: exits 77 (meson: SKIP), saying what
# to install, when a command is missing; bench_tools_hint, if set, is said too.
bench_need_tools() {
        local missing=() tool
        for tool in "$@"; do
                command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
        done
        if (( ${#missing[@]} )); then
                say "missing tools; install them with: apt-get install ${missing[*]}"
                [[ -z "${bench_tools_hint:-}" ]] || say "$bench_tools_hint"
                exit 77
        fi
}

# bench_make_tmp [MODE]: makes $tmp and the EXIT trap that ends the
# processes whose pids are in the variables named by bench_pid_vars (in that
# order), shows the tail of the logs $tmp/NAME.log named by bench_logs when
# the run failed, and removes $tmp (unless keep=1).
bench_make_tmp() {
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/makima-bench-$bench_name.XXXXXX")
        # The agent runs as another uid in its sandbox and must reach its worktree.
        [[ -z "${1:-}" ]] || chmod "$1" "$tmp"
        trap bench_cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
}

# shellcheck disable=SC2317 # called by the EXIT trap
bench_cleanup() {
        local rc=$? var log
        for var in $bench_pid_vars; do
                [[ -z "${!var}" ]] || kill -TERM "${!var}" 2>/dev/null || true
        done
        for var in $bench_pid_vars; do
                [[ -z "${!var}" ]] || wait "${!var}" 2>/dev/null || true
        done
        if (( rc == 1 )); then
                for log in $bench_logs; do
                        [[ -s "$tmp/$log.log" ]] || continue
                        say "last lines of $log's log:"
                        tail -n 20 "$tmp/$log.log" >&2 || true
                done
        fi
        if [[ "$keep" == 1 ]]; then
                say "kept $tmp"
        else
                rm -rf "$tmp"
        fi
        exit "$rc"
}

# bench_make_repo: $tmp/repo ($repo), a git repository whose one commit has
# its README and whatever files the caller put there before.
bench_make_repo() {
        repo="$tmp/repo"
        git init -q -b main "$repo"
        echo "bench/$bench_name repository" > "$repo/README"
        git -C "$repo" add .
        git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -q -m "initial commit"
}

# bench_write_conf POLL_SEC SANDBOX [AGENT_ENVIRONMENT]: $tmp/makima.conf
# for makima-api and one makima-worker running one task at a time:
# SQLite in $tmp/makima.db, $agent_bin as the agent.
bench_write_conf() {
        {
                printf '[Store]\nBackend=sqlite\nPath=%s\n\n' "$tmp/makima.db"
                printf '[Worker]\nMaxConcurrentTasks=1\nPollIntervalSec=%s\n\n' "$1"
                printf '[Agent]\nCommand=%s\n' "$agent_bin"
                [[ -z "${3:-}" ]] || printf 'Environment=%s\n' "$3"
                printf '\n[Sandbox]\nEnabled=%s\n' "$2"
        } > "$tmp/makima.conf"
}

# bench_start_bus: a private dbus-daemon ($bus_pid) at $tmp/bus, for
# makima-api and makima-worker (MAKIMA_BUS_ADDRESS).
bench_start_bus() {
        dbus-daemon --config-file=/usr/share/dbus-1/session.conf --address="unix:path=$tmp/bus" --nofork --nopidfile \
                >"$tmp/dbus.log" 2>&1 &
        # shellcheck disable=SC2034 # bench_cleanup ends it
        bus_pid=$!
        for _ in $(seq 100); do
                [[ -S "$tmp/bus" ]] && break
                sleep 0.05
        done
        [[ -S "$tmp/bus" ]] || die "dbus-daemon did not start"
        export MAKIMA_BUS_ADDRESS="unix:path=$tmp/bus"
}

# bench_wait PID NAME CHECK...: runs CHECK until it succeeds, for up to
# 10 s, dying if the process PID (NAME) exits first. The caller checks once
# more afterwards, saying what did not happen.
bench_wait() {
        local pid=$1 name=$2
        shift 2
        for _ in $(seq 200); do
                "$@" && return 0
                kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
                sleep 0.05
        done
        return 0
}

# api ARG...: curl to makima-api's Unix socket $api_sock.
api() { curl -sS --fail-with-body --unix-socket "$api_sock" "$@"; }

api_answers_health() {
        [[ -S "$api_sock" ]] && api -o /dev/null http://localhost/api/v1/health 2>/dev/null
}

# bench_start_api: makima-api ($api_pid) with $tmp/makima.conf on the Unix
# socket $tmp/api.sock ($api_sock), once it answers.
bench_start_api() {
        api_sock="$tmp/api.sock"
        "$api_bin" --config "$tmp/makima.conf" --listen "unix:$api_sock" >"$tmp/makima-api.log" 2>&1 &
        api_pid=$!
        bench_wait "$api_pid" makima-api api_answers_health
        api -o /dev/null http://localhost/api/v1/health || die "makima-api does not answer GET /api/v1/health"
}

worker_is_up() { grep -q "Worker .*: up to" "$tmp/makima-worker.log"; }

# bench_start_worker [VAR=VALUE...] [-- ARG...]: makima-worker instance 1
# ($worker_pid) with $tmp/makima.conf, its environment and arguments, its
# output in $tmp/makima-worker.log, once it is up.
bench_start_worker() {
        local envs=()
        while (( $# )) && [[ "$1" != -- ]]; do
                envs+=("$1")
                shift
        done
        (( $# )) && shift
        env "${envs[@]}" "$worker_bin" --config "$tmp/makima.conf" --state-dir "$tmp/state" --instance 1 "$@" \
                >"$tmp/makima-worker.log" 2>&1 &
        worker_pid=$!
        bench_wait "$worker_pid" makima-worker worker_is_up
        worker_is_up || die "makima-worker did not start"
}

# free_port: a loopback port nobody listens on. Racy in theory; the servers
# fail loudly if someone takes it in between.
free_port() {
        local p
        for _ in $(seq 100); do
                p=$(( 20000 + RANDOM % 40000 ))
                if [[ -z "$(ss -Htln "sport = :$p")" ]]; then
                        echo "$p"
                        return 0
                fi
        done
        die "no free loopback port found"
}

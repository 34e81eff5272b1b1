#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# HTTP framing attacks on the real makima-api over TCP (http-framing.py sends
# them over raw sockets: curl cannot): request smuggling through two
# Content-Length headers or Content-Length beside Transfer-Encoding,
# transfer codings other than chunked, and every input libmicrohttpd answers
# by itself. Each gets its status with makima's JSON error and the
# connection closes; nothing smuggled or refused reaches the store, and what
# is fine (chunked, pipelined, 100-continue) still is.
#
# Usage: test-api-framing.sh PATH/TO/makima-api

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lib_init "${1:-}"
command -v python3 >/dev/null || { say "python3 is missing, skipping"; exit 77; }
write_config
api_start

req admin POST /api/v1/tokens '{"owner":"framer"}'
expect_status 201 "a token"
token=$(jqr .token)

say "framing attacks over raw sockets"
python3 "$(dirname "${BASH_SOURCE[0]}")/http-framing.py" "$API_PORT" "$token" >&2 ||
        fail "http-framing.py found requests answered wrongly (above)"

say "the store"
req admin GET "/api/v1/tasks?limit=1000"
expect_status 200 "the tasks"
expect_json '[.tasks[].name | select(startswith("framing-"))] | length' 0
expect_json '[.tasks[].name | select(startswith("valid-"))] | sort | join(" ")' \
        "valid-chunked valid-continue valid-pipelined valid-pipelined-chunked"
grep -q '<html>' "$TMP/api.log" && fail "libmicrohttpd answered with its own HTML error"

req anon GET /api/v1/health
expect_status 200 "health after the attacks"
api_stop
say "ok"

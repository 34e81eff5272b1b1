#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Slow clients against the real makima-api over TCP (http-slow.py drives
# them over raw sockets): the reported slowloris (300 connections from one
# address dripping a request head that never ends) is held to
# MaxConnectionsPerIP= and ended by RequestHeadTimeoutSec=, while health and
# other addresses are served; 1,000 slow connections from many loopback
# addresses do not keep health from being answered. Latency is measured by
# bench/slow-clients, not here.
#
# Usage: test-api-slow.sh PATH/TO/makima-api

# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lib_init "${1:-}"
command -v python3 >/dev/null || { say "python3 is missing, skipping"; exit 77; }
slow_py="$(dirname "${BASH_SOURCE[0]}")/http-slow.py"

say "one address, 300 dripping connections (defaults but a short head deadline)"
write_config "RequestHeadTimeoutSec=4"
api_start
python3 "$slow_py" one-address "$API_PORT" 64 4 >&2 || fail "http-slow.py one-address (above)"
req anon GET /api/v1/health
expect_status 200 "health afterwards"
api_stop

say "1000 slow connections over 50 addresses"
write_config "MaxConnections=1200" "RequestHeadTimeoutSec=60"
api_start
python3 "$slow_py" many-addresses "$API_PORT" 1000 >&2 || fail "http-slow.py many-addresses (above)"
api_stop
say "ok"

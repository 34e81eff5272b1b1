-- SPDX-License-Identifier: LGPL-2.1-or-later
-- wrk script for bench/api: POST /api/v1/tasks with a small task body, each
-- with its own name. nginx gets the same requests and answers them with a
-- static file of the size of makima's 201 response.

local token = os.getenv("BENCH_TOKEN") or ""
local n = 0

local headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json",
}

-- setup() runs in wrk's main Lua state; it numbers the threads, whose
-- own states then see the number as the global bench_thread.
local threads = 0
function setup(thread)
        thread:set("bench_thread", threads)
        threads = threads + 1
end

function init(args)
        -- Threads must not make the same names.
        n = (bench_thread or 0) * 1000000000
end

function request()
        n = n + 1
        local body = string.format(
                '{"plan":"Benchmark task %d: read the README and summarise it in one paragraph.","name":"bench-post-%d"}',
                n, n)
        return wrk.format("POST", "/api/v1/tasks", headers, body)
end

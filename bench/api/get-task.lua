-- SPDX-License-Identifier: LGPL-2.1-or-later
-- wrk script for bench/api: GET /api/v1/tasks/{id}, rotating over the task
-- ids in $BENCH_IDS_FILE (one per line) so the store serves every row, not
-- one cached answer. nginx gets the very same request stream; its config
-- maps every /api/v1/tasks/* path to one static file.

local token = os.getenv("BENCH_TOKEN") or ""
local ids_file = os.getenv("BENCH_IDS_FILE")
local ids = {}
local i = 0

-- setup() runs in wrk's main Lua state; it numbers the threads, whose
-- own states then see the number as the global bench_thread.
local threads = 0
function setup(thread)
        thread:set("bench_thread", threads)
        threads = threads + 1
end

function init(args)
        for line in io.lines(ids_file) do
                if line ~= "" then
                        ids[#ids + 1] = line
                end
        end
        assert(#ids > 0, "no task ids in " .. tostring(ids_file))
        -- Start the threads at different places in the list, not in lock-step.
        i = (bench_thread or 0) * 997 % #ids
end

local headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Accept"] = "application/json",
}

function request()
        i = i % #ids + 1
        return wrk.format("GET", "/api/v1/tasks/" .. ids[i], headers)
end

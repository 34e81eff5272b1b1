/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes what the worker does with each line of the agent's stdout: parse
 * it (with and without a working directory for tool paths), summarise it,
 * and, for a control_request, write the refusal that answers it. The seed
 * corpus is lines captured from the real CLI. */

#include "stream-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const char *line, size_t len, const char *cwd) {
        _cleanup_(stream_event_freep) StreamEvent *e = NULL;
        _cleanup_free_ char *summary = NULL, *answer = NULL;

        if (stream_json_parse_line_full(line, len, cwd, &e) < 0)
                return;

        /* A summary always exists and is one journal line. */
        if (stream_event_summary(e, &summary) >= 0 && (!summary || strpbrk(summary, "\n\r")))
                abort();

        /* Touch every extracted string, so ASan checks they live in the event. */
        for (size_t i = 0; i < e->n_tool_uses; i++)
                if (strlen(e->tool_uses[i].input) + strlen(e->tool_uses[i].summary) == SIZE_MAX)
                        abort();
        for (size_t i = 0; i < e->n_tool_results; i++)
                if (e->tool_results[i].content && strlen(e->tool_results[i].content) > STREAM_JSON_TOOL_RESULT_MAX)
                        abort();

        if (e->type == STREAM_EVENT_CONTROL_REQUEST && e->request_id)
                (void) stream_json_control_error_response(e->request_id, e->subtype, &answer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        one((const char *) data, size, NULL);
        one((const char *) data, size, "/tmp/makima-test-fake-api.PlPRnx/repo");
        return 0;
}

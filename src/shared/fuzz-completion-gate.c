/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the completion gate parser: the input is an iteration's output; a
 * gate found in it is turned into its JSON and summary, the JSON text must
 * parse back to the same gate, and everything is freed. */

#include "completion-gate.h"
#include "json-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(completion_gate_freep) CompletionGate *g = NULL, *back = NULL;
        _cleanup_json_ json_object *o = NULL, *o2 = NULL;
        _cleanup_free_ char *error = NULL, *summary = NULL, *text = NULL;
        const char *s;
        int r;

        r = completion_gate_find((const char *) data, size, &g, &error);
        if (r == -EBADMSG && !error)
                abort();                /* a malformed block always says why */
        if (r <= 0)
                return 0;
        if (error)
                abort();

        if (completion_gate_summary(g, &summary) < 0)
                return 0;
        if (completion_gate_to_json(g, &o) < 0)
                return 0;

        /* What is stored as the event payload reads back as the same gate,
         * unless escaping grew it past the size limit. */
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s || strlen(s) > COMPLETION_GATE_SIZE_MAX)
                return 0;
        if (asprintf(&text, COMPLETION_GATE_OPEN "%s" COMPLETION_GATE_CLOSE, s) < 0)
                return 0;
        r = completion_gate_find(text, strlen(text), &back, NULL);
        if (r == -ENOMEM)
                return 0;
        if (r != 1)
                abort();
        if (completion_gate_to_json(back, &o2) < 0)
                return 0;
        if (!json_object_equal(o, o2))
                abort();
        return 0;
}

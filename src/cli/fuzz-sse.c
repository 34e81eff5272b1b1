/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the Server-Sent Events parser the way `makima task watch` drives
 * it: the bytes arrive in pieces, and however they are split the events
 * that come out must be the same. */

#include <stdint.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Digest {
        uint64_t hash;
        size_t n;
} Digest;

static void mix(Digest *d, const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                d->hash = (d->hash ^ (uint8_t) s[i]) * 1099511628211ULL;
        d->hash = (d->hash ^ 0xff) * 1099511628211ULL;
}

static int on_event(const SseEvent *e, void *userdata) {
        Digest *d = userdata;

        if (!e->type || !e->data || !e->id || e->data[e->data_size] != '\0')
                abort();
        mix(d, e->type, strlen(e->type));
        mix(d, e->data, e->data_size);
        mix(d, e->id, strlen(e->id));
        d->n++;
        return 0;
}

static int run(const uint8_t *data, size_t size, size_t step, Digest *ret, char **ret_id) {
        _cleanup_(sse_parser_freep) SseParser *p = NULL;
        int k = 0;

        *ret = (Digest) { .hash = 14695981039346656037ULL };
        if (sse_parser_new(&p) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < size && k >= 0; i += step)
                k = sse_parser_feed(p, data + i, MIN(step, size - i), on_event, ret);
        *ret_id = strdup(sse_parser_last_event_id(p));
        if (!*ret_id)
                return -ENOMEM;
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *id_whole = NULL;
        Digest whole;
        int k_whole;

        k_whole = run(data, size, size ?: 1, &whole, &id_whole);
        if (k_whole == -ENOMEM)
                return 0;

        /* A few other ways the reads could have cut it, down to one byte at a time. */
        for (size_t step = 1; step < size; step = step * 3 + 1) {
                _cleanup_free_ char *id = NULL;
                Digest d;
                int k = run(data, size, step, &d, &id);

                if (k == -ENOMEM)
                        continue;
                if (k != k_whole || d.n != whole.n || d.hash != whole.hash || !streq(id, id_whole))
                        abort();
        }
        return 0;
}

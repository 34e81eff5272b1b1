/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the HTTP response parser the way the client drives it: the bytes
 * arrive in pieces, and a response found complete early must be the one
 * found once everything has arrived. The input is also taken as a chunked
 * body: the incremental decoder of streams, fed in pieces, must agree with
 * the parser of whole responses. */

#include <stdint.h>

#include "http-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char chunked_head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

/* Decodes data as a chunked body, step bytes at a time. */
static int decode(const uint8_t *data, size_t size, size_t step, char *out, size_t *ret_out) {
        HttpChunkDecoder c = {};
        _cleanup_free_ char *pending = malloc(size + 1);
        size_t n = 0, o = 0;
        int k = 0;

        if (!pending)
                return -ENOMEM;
        for (size_t i = 0; i < size && k == 0; i += step) {
                size_t consumed, produced, l = MIN(step, size - i);

                memcpy(pending + n, data + i, l);
                n += l;
                k = http_chunked_decode(&c, pending, n, out + o, &consumed, &produced);
                if (k < 0)
                        return k;
                if (consumed > n)
                        abort();
                o += produced;
                memmove(pending, pending + consumed, n - consumed);
                n -= consumed;
        }
        *ret_out = o;
        return k;
}

static void check_chunked(const uint8_t *data, size_t size) {
        _cleanup_(http_response_freep) HttpResponse *r = NULL;
        _cleanup_free_ char *buf = NULL, *out = NULL;
        size_t n = 0;
        int k, want;

        /* Small bodies only: the limits on a whole body and on a stream differ beyond them. */
        if (size > 4000)
                return;
        buf = malloc(sizeof(chunked_head) - 1 + size);
        out = malloc(size + 1);
        if (!buf || !out)
                return;
        memcpy(buf, chunked_head, sizeof(chunked_head) - 1);
        memcpy(buf + sizeof(chunked_head) - 1, data, size);
        want = http_response_parse(buf, sizeof(chunked_head) - 1 + size, false, &r);
        if (want == -ENOMEM)
                return;

        for (size_t step = size ?: 1; step > 0; step /= 3) {
                k = decode(data, size, step, out, &n);
                if (k == -ENOMEM)
                        return;
                if ((k < 0) != (want < 0) || (k > 0) != (want > 0))
                        abort();
                if (k > 0 && (n != r->body_size || memcmp(out, r->body, n) != 0))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(http_response_freep) HttpResponse *whole = NULL;
        int k_whole;

        k_whole = http_response_parse(data, size, true, &whole);
        if (k_whole == 0)
                abort();        /* at EOF there is nothing left to wait for */
        if (k_whole > 0 && (!whole->body || whole->body[whole->body_size] != '\0'))
                abort();

        /* Feed growing prefixes (a handful of split points, as reads would deliver them). */
        for (size_t step = size / 7 + 1, i = 0; i < size; i += step) {
                _cleanup_(http_response_freep) HttpResponse *part = NULL;
                int k = http_response_parse(data, i, false, &part);

                if (k > 0) {
                        /* Complete early: the full input must agree. */
                        if (k_whole <= 0 || part->status != whole->status || part->body_size != whole->body_size ||
                            memcmp(part->body, whole->body, part->body_size) != 0 ||
                            part->n_headers != whole->n_headers)
                                abort();
                } else if (k < 0 && k != -ENOMEM) {
                        /* Bytes that are already wrong stay wrong. */
                        if (k_whole >= 0)
                                abort();
                }
        }

        if (whole)
                (void) http_response_header(whole, "Content-Type");
        check_chunked(data, size);
        return 0;
}

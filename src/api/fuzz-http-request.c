/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the request framing checks the way makima-api's front door drives
 * them: the input is a stream of requests (heads, then bodies framed by
 * Content-Length or chunked), read in pieces whose sizes come from the
 * input itself. Whatever the pieces, a head passes or is refused as it is
 * when everything is there at once (with the same size and framing), a
 * chunked body gets exactly the same verdict, and neither ever takes bytes
 * it was not given. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "http-request.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const HttpLimits limits = {
        .max_head_bytes = 2048,
        .max_target_bytes = 512,
        .max_body_bytes = 8192,
};

/* The size of the next piece: 1 to 16 bytes, from a byte of the input. */
static size_t piece(const uint8_t *data, size_t size, size_t at) {
        return size == 0 ? 1 : (size_t) (data[at % size] & 0x0f) + 1;
}

static int head_whole(const char *buf, size_t size, HttpHead *h, HttpError *e) {
        http_head_init(h);
        return http_head_feed(h, &limits, buf, size, e);
}

static int head_pieces(const uint8_t *data, const char *buf, size_t size, HttpHead *h, HttpError *e) {
        size_t have = 0;
        int k = 0;

        http_head_init(h);
        while (k == 0 && have < size) {
                have = MIN(size, have + piece(data, size, have));
                k = http_head_feed(h, &limits, buf, have, e);
        }
        return k;
}

static int chunked_pieces(const uint8_t *data, const char *buf, size_t size, size_t *ret_used, HttpError *e) {
        HttpChunked c;
        size_t at = 0;
        int k = 0;

        http_chunked_init(&c);
        while (k == 0 && at < size) {
                size_t n = MIN(size - at, piece(data, size, at)), used = SIZE_MAX;

                k = http_chunked_feed(&c, &limits, buf + at, n, &used, e);
                if (k < 0)
                        break;
                if (used > n || (k == 0 && used != n))
                        abort();
                at += used;
        }
        *ret_used = at;
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        size_t at = 0;

        /* Requests one after the other, as on a kept-alive connection. */
        while (at < size) {
                HttpHead h1, h2;
                HttpError e1 = {}, e2 = {};
                int k1, k2;

                k1 = head_whole(buf + at, size - at, &h1, &e1);
                k2 = head_pieces(data, buf + at, size - at, &h2, &e2);
                if (k1 != k2)
                        abort();
                if (k1 < 0) {
                        /* Which refusal may depend on what had arrived (a head
                         * over the size limit before its bad line was complete),
                         * that there is one may not. */
                        if (k1 != -EBADMSG || e1.status < 400 || e2.status < 400 || !e1.code || !e2.code)
                                abort();
                        return 0;
                }
                if (k1 == 0)
                        return 0;               /* the head is unfinished, whatever the pieces */
                if (h1.size != h2.size || h1.size > size - at || h1.size > limits.max_head_bytes ||
                    h1.framing != h2.framing || h1.content_length != h2.content_length ||
                    !IN_SET(h1.version, 10U, 11U) || h1.size < 4 || memcmp(buf + at + h1.size - 4, "\r\n\r\n", 4) != 0)
                        abort();
                at += h1.size;

                if (h1.framing == HTTP_BODY_LENGTH) {
                        if (h1.content_length >= size - at)
                                return 0;
                        at += (size_t) h1.content_length;
                } else if (h1.framing == HTTP_BODY_CHUNKED) {
                        HttpChunked c;
                        size_t used1 = 0, used2 = 0;

                        http_chunked_init(&c);
                        k1 = http_chunked_feed(&c, &limits, buf + at, size - at, &used1, &e1);
                        k2 = chunked_pieces(data, buf + at, size - at, &used2, &e2);
                        if (k1 != k2)
                                abort();
                        if (k1 < 0) {
                                if (e1.status != e2.status || !streq(e1.code, e2.code))
                                        abort();
                                return 0;
                        }
                        if (used1 != used2 || used1 > size - at)
                                abort();
                        if (k1 == 0)
                                return 0;
                        at += used1;
                }
        }
        return 0;
}

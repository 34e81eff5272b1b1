/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzzes the HTTP response parser the way the client drives it: the bytes
 * arrive in pieces, and a response found complete early must be the one
 * found once everything has arrived. */

#include <stdint.h>

#include "http-client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        return 0;
}

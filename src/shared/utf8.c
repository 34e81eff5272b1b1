/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Strict UTF-8 validation by byte ranges (RFC 3629, table 3-7 of Unicode):
 * the second byte's range is what rules out overlong forms and surrogates. */

#include <stdint.h>

#include "utf8.h"

bool utf8_is_valid(const void *s, size_t n) {
        const uint8_t *p = s, *end = p + n;

        while (p < end) {
                uint8_t c = *p;
                uint8_t lo = 0x80, hi = 0xBF;
                size_t k;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        k = 1;
                else if (c >= 0xE0 && c <= 0xEF) {
                        k = 2;
                        if (c == 0xE0)
                                lo = 0xA0;
                        else if (c == 0xED)
                                hi = 0x9F;
                } else if (c >= 0xF0 && c <= 0xF4) {
                        k = 3;
                        if (c == 0xF0)
                                lo = 0x90;
                        else if (c == 0xF4)
                                hi = 0x8F;
                } else
                        return false;

                if ((size_t) (end - p) <= k || p[1] < lo || p[1] > hi)
                        return false;
                for (size_t i = 2; i <= k; i++)
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                p += k + 1;
        }
        return true;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* utf8_is_valid() by byte ranges against a decoder that checks the code point
 * itself (the completion gate's former validator), over every two-byte prefix
 * of every sequence length, plus truncations and the RFC 3629 examples. */

#include <stdint.h>

#include "tests.h"
#include "utf8.h"

static bool utf8_is_valid_by_decoding(const uint8_t *p, size_t n) {
        const uint8_t *end = p + n;

        while (p < end) {
                uint32_t cp, min;
                size_t k;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if ((*p & 0xE0) == 0xC0)
                        k = 1, cp = *p & 0x1F, min = 0x80;
                else if ((*p & 0xF0) == 0xE0)
                        k = 2, cp = *p & 0x0F, min = 0x800;
                else if ((*p & 0xF8) == 0xF0)
                        k = 3, cp = *p & 0x07, min = 0x10000;
                else
                        return false;
                if ((size_t) (end - p) <= k)
                        return false;
                for (size_t i = 1; i <= k; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return false;
                p += k + 1;
        }
        return true;
}

/* Every first and second byte, followed by continuation bytes that vary too. */
static void test_against_decoder(void) {
        static const uint8_t tails[] = { 0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xFF };
        unsigned valid = 0;

        for (unsigned a = 0; a < 256; a++)
                for (unsigned b = 0; b < 256; b++)
                        for (size_t t = 0; t < ELEMENTSOF(tails); t++)
                                for (size_t len = 1; len <= 4; len++) {
                                        uint8_t s[4] = { a, b, tails[t], tails[ELEMENTSOF(tails) - 1 - t] };
                                        bool v = utf8_is_valid(s, len);

                                        if (v != utf8_is_valid_by_decoding(s, len)) {
                                                fprintf(stderr, "%02x %02x %02x %02x (%zu bytes): %s\n",
                                                        s[0], s[1], s[2], s[3], len, v ? "accepted" : "refused");
                                                abort();
                                        }
                                        valid += v;
                                }
        assert_se(valid > 0);
}

static void test_examples(void) {
        assert_se(utf8_is_valid("", 0));
        assert_se(utf8_is_valid("A\xe2\x89\xa2\xce\x91.", 7));        /* RFC 3629 examples */
        assert_se(utf8_is_valid("\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", 9));
        assert_se(utf8_is_valid("\xef\xbb\xbf\xf0\xa3\x8e\xb4", 7));
        assert_se(utf8_is_valid("\xf4\x8f\xbf\xbf", 4));               /* U+10FFFF */
        assert_se(!utf8_is_valid("\xf4\x90\x80\x80", 4));              /* above it */
        assert_se(!utf8_is_valid("\xed\xa0\x80", 3));                  /* surrogate */
        assert_se(!utf8_is_valid("\xc0\xaf", 2));                      /* overlong '/' */
        assert_se(!utf8_is_valid("\xe0\x80\xaf", 3));
        assert_se(!utf8_is_valid("\xe2\x89", 2));                      /* cut short */
        assert_se(!utf8_is_valid("ok\xe2\x89\xa2", 4));
        assert_se(utf8_is_valid("a\0b", 3));                           /* NUL is the caller's business */
}

int main(void) {
        test_examples();
        test_against_decoder();
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The checks every unit test in src/shared uses: each aborts on failure after
 * printing file:line, the expression and, where there are any, the values. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define assert_se(expr)                                                                         \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define assert_streq(a, b)                                                                      \
        do {                                                                                    \
                const char *_a = (a), *_b = (b);                                                \
                if (!streq_ptr(_a, _b)) {                                                       \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\" (%s, %s)\n", __FILE__, __LINE__, \
                                strna(_a), strna(_b), #a, #b);                                  \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define assert_contains(haystack, needle)                                                       \
        do {                                                                                    \
                const char *_h = (haystack), *_n = (needle);                                    \
                if (!_h || !strstr(_h, _n)) {                                                   \
                        fprintf(stderr, "%s:%d: \"%s\" not in:\n%s\n", __FILE__, __LINE__, _n, strna(_h)); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

/* Compares a vector, which must not be NULL, with the expected words, which end at
 * the first NULL (no words: pass NULL). Needs strv_length() from conf.h. */
#define assert_strv(l, ...)                                                                     \
        do {                                                                                    \
                const char *_e[] = { __VA_ARGS__, NULL };                                       \
                size_t _n = 0;                                                                  \
                char **_l = (l);                                                                \
                assert_se(_l);                                                                  \
                while (_e[_n])                                                                  \
                        _n++;                                                                   \
                assert_se(strv_length(_l) == _n);                                               \
                for (size_t _i = 0; _i < _n; _i++)                                              \
                        assert_streq(_l[_i], _e[_i]);                                           \
        } while (0)

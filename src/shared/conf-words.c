/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Splitting a makima.conf value into words, shell-like but without
 * expansion: what list keys such as AllowedTools= and Environment= take. */

#include "conf.h"

#define WHITESPACE " \t\n\r"

int config_split_words(const char *value, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *word = NULL;
        const char *p = value;
        size_t n = 0, cap = 8;

        /* Unquoting and unescaping only shrink the text, so one buffer holds any word. */
        word = malloc(strlen(value) + 1);
        /* An empty value gives an empty vector, not NULL, so callers can tell it from a failure. */
        l = calloc(cap, sizeof(char *));
        if (!word || !l)
                return -ENOMEM;

        for (;;) {
                char quote = 0;
                size_t k = 0;

                p += strspn(p, WHITESPACE);
                if (*p == '\0')
                        break;

                for (; *p; p++) {
                        if (*p == '\\') {
                                /* Escapes work inside both kinds of quotes, as in systemd's Environment=. */
                                switch (*++p) {
                                case 'n':
                                        word[k++] = '\n';
                                        break;
                                case 't':
                                        word[k++] = '\t';
                                        break;
                                case '\\':
                                case '"':
                                case '\'':
                                case ' ':
                                        word[k++] = *p;
                                        break;
                                default:        /* a trailing backslash or an escape we do not know */
                                        return -EINVAL;
                                }
                        } else if (quote != 0) {
                                if (*p == quote)
                                        quote = 0;
                                else
                                        word[k++] = *p;
                        } else if (IN_SET(*p, '"', '\''))
                                quote = *p;
                        else if (strchr(WHITESPACE, *p))
                                break;
                        else
                                word[k++] = *p;
                }
                if (quote != 0)
                        return -EINVAL;

                /* Grown by doubling, not strv_push(): a value may hold many words. */
                if (n + 2 > cap) {
                        char **t = reallocarray(l, cap * 2, sizeof(char *));
                        if (!t)
                                return -ENOMEM;
                        l = t, cap *= 2;
                }
                l[n] = strndup(word, k);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

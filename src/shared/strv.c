/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NULL-terminated string vectors: the config's lists and the argv and
 * environment built from them. Declared in conf.h. */

#include "conf.h"

char **strv_free(char **l) {
        for (char **i = l; i && *i; i++)
                free(*i);
        return mfree(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        for (; l && *l; l++)
                n++;
        return n;
}

/* Ownership of value passes to the vector even on failure, so that
 * strv_push(&l, strdup(x)) cannot leak; a NULL value is taken to be a failed
 * allocation. */
int strv_push(char ***l, char *value) {
        size_t n = strv_length(*l);
        char **t;

        if (!value)
                return -ENOMEM;
        t = reallocarray(*l, n + 2, sizeof(char *));
        if (!t) {
                free(value);
                return -ENOMEM;
        }
        t[n] = value;
        t[n + 1] = NULL;
        *l = t;
        return 0;
}

int strv_extend(char ***l, const char *value) {
        return strv_push(l, strdup(value));
}

int strv_extend_all(char ***l, char *const *add) {
        for (char *const *i = add; i && *i; i++) {
                int r = strv_extend(l, *i);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "user-util.h"

/* NSS answers can be large (a group with many members): the buffer grows on ERANGE up to this. */
#define NSS_BUFFER_MAX (1024U * 1024U)

typedef enum NssQuery {
        NSS_USER_BY_NAME,
        NSS_USER_BY_UID,
        NSS_GROUP_BY_NAME,
} NssQuery;

/* One look-up into *pw or *gr, whose strings live in *buf (the caller's to free). */
static int nss_get(NssQuery q, const char *name, uid_t uid, struct passwd *pw, struct group *gr, char **buf) {
        for (size_t size = 4096; size <= NSS_BUFFER_MAX; size *= 2) {
                struct passwd *pw_result = NULL;
                struct group *gr_result = NULL;
                char *b = realloc(*buf, size);
                int k;

                if (!b)
                        return -ENOMEM;
                *buf = b;
                switch (q) {
                case NSS_USER_BY_NAME:
                        k = getpwnam_r(name, pw, b, size, &pw_result);
                        break;
                case NSS_USER_BY_UID:
                        k = getpwuid_r(uid, pw, b, size, &pw_result);
                        break;
                default:
                        k = getgrnam_r(name, gr, b, size, &gr_result);
                }
                if (k == 0)
                        return pw_result || gr_result ? 0 : -ENOENT;
                if (k != ERANGE)
                        return -k;
        }
        return -ERANGE;
}

int user_lookup(const char *name, uid_t *ret_uid, gid_t *ret_gid) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        int r;

        r = nss_get(NSS_USER_BY_NAME, name, 0, &pw, NULL, &buf);
        if (r < 0)
                return r;
        *ret_uid = pw.pw_uid;
        *ret_gid = pw.pw_gid;
        return 0;
}

int user_name(uid_t uid, char **ret) {
        _cleanup_free_ char *buf = NULL;
        struct passwd pw;
        int r;

        r = nss_get(NSS_USER_BY_UID, NULL, uid, &pw, NULL, &buf);
        if (r == -ENOENT)
                return asprintf(ret, "uid-%u", (unsigned) uid) < 0 ? -ENOMEM : 0;
        if (r < 0)
                return r;
        *ret = strdup(pw.pw_name);
        return *ret ? 0 : -ENOMEM;
}

int group_lookup(const char *name, gid_t *ret_gid) {
        _cleanup_free_ char *buf = NULL;
        struct group gr;
        int r;

        r = nss_get(NSS_GROUP_BY_NAME, name, 0, NULL, &gr, &buf);
        if (r < 0)
                return r;
        *ret_gid = gr.gr_gid;
        return 0;
}

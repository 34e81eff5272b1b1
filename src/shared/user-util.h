/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Users and groups, looked up through NSS (getpwnam_r() and friends, with a
 * buffer that grows for large answers). */
#pragma once

#include <sys/types.h>

/* -ENOENT if there is no such user; -ENOMEM, or what NSS said, otherwise. */
int user_lookup(const char *name, uid_t *ret_uid, gid_t *ret_gid);
/* The name of uid, or "uid-N" if it has none. */
int user_name(uid_t uid, char **ret);
/* -ENOENT if there is no such group. */
int group_lookup(const char *name, gid_t *ret_gid);

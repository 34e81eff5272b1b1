/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What git-util.c and git-copy.c share: opening files beneath a worktree
 * without following an agent's symlinks out of it. Private. */
#pragma once

#include <dirent.h>

#include "macro.h"

/* Opens path below dir_fd; a symlink leading out of it is -EXDEV. */
int git_open_beneath(int dir_fd, const char *path, int flags);

/* Copies all of in to out. */
int git_copy_fd(int in, int out);

/* Copies the files named in copy_files (relative paths, as CopyFiles=
 * lists them) from the repository's top directory into the worktree, each
 * beneath its top. */
int git_copy_files_into(const char *top, const char *worktree, char *const *copy_files, char **ret_error);

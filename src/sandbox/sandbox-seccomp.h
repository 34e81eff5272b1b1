/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The seccomp deny list every agent runs under: built with libseccomp from a
 * table, exported as BPF into a sealed memfd that bwrap reads with --seccomp. */
#pragma once

#include <stdbool.h>

/* libseccomp's own header is <seccomp.h> too: only seccomp.c includes it, and
 * this header needs none of its types. */
#include <stdint.h>

#include "macro.h"

/* One refused system call and what the caller sees instead. With arg >= 0,
 * only calls whose argument `arg` satisfies (value & mask) == match. */
typedef struct SandboxSyscallRule {
        const char *name;
        int nr;                         /* negative for calls the native ABI lacks */
        int error;
        int arg;                        /* -1: always; else refused when (arg & mask) == match, */
        uint64_t mask;
        uint64_t match;
        bool unless;                    /* or with this, when arg != match */
} SandboxSyscallRule;

/* The deny list, for tests and `makima-sandbox-run --list-syscalls`. */
const SandboxSyscallRule *sandbox_seccomp_rules(size_t *ret_n);

/* Builds the filter (allow by default, refuse the listed calls, for the
 * native ABI and the compat ABIs a process can switch to: i386 and x32 on
 * x86-64, arm on aarch64) and exports it as BPF into a sealed memfd
 * (O_CLOEXEC, offset 0), ready for `bwrap --seccomp FD`. */
int sandbox_seccomp_export_fd(int *ret_fd);

/* Installs the BPF read from fd on the calling thread, as bwrap does: sets
 * no_new_privs, then PR_SET_SECCOMP. For debugging and tests. */
int sandbox_seccomp_load_fd(int fd);

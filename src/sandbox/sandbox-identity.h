/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who the processes in a sandbox are on the host. An agent must never be
 * host root, nor the user makima's services run as: where the caller can
 * switch users (root, or CAP_SETUID and CAP_SETGID), sandboxed processes run
 * as [Sandbox] User= (makima-agent); otherwise as the caller's own user.
 *
 * With a user of their own, bwrap joins a user namespace made here
 * (sandbox_userns_new()) that maps the agent at SANDBOX_UID and the caller
 * at SANDBOX_CALLER_UID: bwrap sets the sandbox up with every capability
 * inside that namespace, which lets it reach the caller's own directories
 * (the namespace maps their owner), and then drops them all. As root, the
 * namespace is the agent's and bwrap runs as the agent: every process of
 * the sandbox is then one user, and bwrap's death with its parent reaches
 * them all. Without CAP_SYS_ADMIN (the worker's unit grants CAP_SETUID and
 * CAP_SETGID only) the kernel lets the caller write the maps only of a
 * namespace it owns: bwrap then runs as the caller and becomes the agent
 * inside, and the agent's cgroup is what takes everything down with the
 * worker. The caller needs CAP_KILL (or root) to signal the agent. The
 * agent's files are its own; the caller reads them as a member of the
 * agent's group (the per-task directories are set-group-ID, the agent's
 * umask leaves the group its rights). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "conf.h"

/* What the agent's processes are inside the sandbox. */
#define SANDBOX_UID 1000
#define SANDBOX_GID 1000
#define SANDBOX_USER "agent"
/* The caller's own files, as the agent sees them, when the agent is a user
 * of its own. Not 0: a change of uid away from root would cost bwrap the
 * capabilities it sets the sandbox up with. */
#define SANDBOX_CALLER_UID 999
#define SANDBOX_CALLER_GID 999

/* The agent's umask when it is a user of its own: its group (the caller's
 * services are members) keeps every right, the rest of the host has none. */
#define SANDBOX_SEPARATE_UMASK 0007

typedef struct SandboxIdentity {
        bool separate;                  /* a user of its own, not the caller */
        bool owns_userns;               /* the user namespace is the agent's, and bwrap runs as the
                                         * agent: where the caller may write the maps of a namespace
                                         * it does not own (root). Else the caller owns it and
                                         * runs bwrap, which then becomes the agent inside. */
        uid_t uid;                      /* on the host */
        gid_t gid;
        char *user;                     /* its name, for messages */
} SandboxIdentity;

/* Decides who sandboxed processes run as, from [Sandbox] User= (NULL or ""
 * in the config: the caller). Refuses (-EPERM, logged) to let them be host
 * root: the caller is root and the user is missing or not asked for. Logs a
 * notice when the user exists but the caller cannot switch to it. */
int sandbox_identity_init(const Config *c, SandboxIdentity *ret);
void sandbox_identity_done(SandboxIdentity *i);

/* The identity of the caller itself (not separate). */
int sandbox_identity_self(SandboxIdentity *ret);

/* Whether this process may switch users: root, or CAP_SETUID and
 * CAP_SETGID in its effective set. */
bool sandbox_can_switch_users(void);

/* A new user namespace owned by the caller, mapping the identity's user at
 * SANDBOX_UID and the caller at SANDBOX_CALLER_UID (their groups likewise),
 * for `bwrap --userns FD`. Returns the namespace's fd (O_CLOEXEC) or
 * -errno. Only for a separate identity. */
int sandbox_userns_new(const SandboxIdentity *i);

/* In a forked child about to exec bwrap (async-signal-safe): for a user of
 * its own, becomes that user (sandbox_identity_become()). */
int sandbox_identity_prepare_exec(const SandboxIdentity *i);

/* In a forked child that acts on the agent's files itself (no bwrap):
 * becomes the identity's user for good. A no-op for the caller's own
 * identity. Async-signal-safe. */
int sandbox_identity_become(const SandboxIdentity *i);

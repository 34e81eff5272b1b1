/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* makima-api on D-Bus: the name org.makima1, the object /org/makima1 with
 * the interface org.makima1.Manager, and the signals that wake workers. The
 * bus is a front door and a hint, never a dependency: without it the API
 * serves HTTP as before and workers poll the store. */
#pragma once

#include "store.h"

typedef struct Manager Manager;

#define BUS_NAME "org.makima1"
#define BUS_PATH "/org/makima1"
#define BUS_INTERFACE "org.makima1.Manager"

/* Connects to $MAKIMA_BUS_ADDRESS if set, else to the system bus when we run
 * as a system service; exports the object and asks for the name. Failures
 * are logged as warnings and leave m->bus NULL; only -ENOMEM is returned. */
int bus_setup(Manager *m);
void bus_done(Manager *m);

/* A task became pending (created, or queued again). */
void bus_emit_task_queued(Manager *m, const char *task_id);
/* A control request for the task was stored. */
void bus_emit_control_queued(Manager *m, const char *task_id, ControlKind kind);

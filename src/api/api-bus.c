/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus side of makima-api: the connection (a private bus named by
 * $MAKIMA_BUS_ADDRESS, or the system bus for the system service), the name
 * org.makima1, and the org.makima1.Manager object whose signals tell the
 * workers that a task was queued or a control request stored. The methods
 * supervisors and administrators call will join the vtable below. */

#include <systemd/sd-bus.h>

#include "api-bus.h"
#include "api-manager.h"
#include "log.h"

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_SIGNAL_WITH_NAMES("TaskQueued", "s", SD_BUS_PARAM(task_id), 0),
        SD_BUS_SIGNAL_WITH_NAMES("ControlQueued", "ss", SD_BUS_PARAM(task_id) SD_BUS_PARAM(kind), 0),
        SD_BUS_VTABLE_END
};

static int on_name_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t result;
        int r;

        if (e) {
                log_warning("Failed to acquire the bus name %s: %s", BUS_NAME, e->message ?: e->name);
                return 0;
        }
        r = sd_bus_message_read(reply, "u", &result);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the answer to our request for %s: %m", BUS_NAME);
                return 0;
        }
        /* 1: we are the primary owner; 4: we already were. */
        if (result == 1 || result == 4)
                log_debug("Acquired the bus name %s.", BUS_NAME);
        else
                log_warning("The bus name %s is owned by another process; serving the bus without it.", BUS_NAME);
        return 0;
}

static int on_disconnected(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        log_warning("Lost the connection to the bus; workers wake up by polling the store now.");
        return 0;
}

/* A system service has an invocation id from systemd; root started by hand is one too. */
static bool running_as_system_service(void) {
        return getenv("INVOCATION_ID") || geteuid() == 0;
}

static int bus_connect(sd_bus **ret, const char **ret_where) {
        _cleanup_(sd_bus_unrefp) sd_bus *bus = NULL;
        const char *address = getenv("MAKIMA_BUS_ADDRESS");
        int r;

        if (isempty(address)) {
                *ret_where = "the system bus";
                r = sd_bus_open_system_with_description(&bus, "makima-api");
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(bus);
                return 0;
        }

        *ret_where = address;
        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        r = sd_bus_set_address(bus, address);
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        (void) sd_bus_set_description(bus, "makima-api");
        r = sd_bus_start(bus);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(bus);
        return 0;
}

int bus_setup(Manager *m) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *where = NULL;
        int r;

        if (isempty(getenv("MAKIMA_BUS_ADDRESS")) && !running_as_system_service()) {
                log_debug("No $MAKIMA_BUS_ADDRESS and not a system service: not on any bus.");
                return 0;
        }

        r = bus_connect(&bus, &where);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_warning_errno(r, "Failed to connect to %s, serving without D-Bus (workers poll the store): %m", where);
                return 0;
        }

        r = sd_bus_add_object_vtable(bus, NULL, BUS_PATH, BUS_INTERFACE, manager_vtable, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to export %s on %s: %m", BUS_PATH, where);
                return 0;
        }
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, m);
        if (r < 0)
                log_debug_errno(r, "Failed to watch for a disconnect: %m");
        r = sd_bus_request_name_async(bus, NULL, BUS_NAME, 0, on_name_reply, m);
        if (r < 0)
                log_warning_errno(r, "Failed to ask for the bus name %s on %s: %m", BUS_NAME, where);
        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                log_warning_errno(r, "Failed to attach the bus to the event loop: %m");
                return 0;
        }

        log_info("Connected to %s.", where);
        m->bus = TAKE_PTR(bus);
        return 0;
}

void bus_done(Manager *m) {
        if (!m->bus)
                return;
        /* Signals still queued go out before we leave. */
        (void) sd_bus_detach_event(m->bus);
        m->bus = sd_bus_flush_close_unref(m->bus);
}

void bus_emit_task_queued(Manager *m, const char *task_id) {
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_signal(m->bus, BUS_PATH, BUS_INTERFACE, "TaskQueued", "s", task_id);
        if (r < 0)
                log_debug_errno(r, "Failed to emit TaskQueued(%s): %m", task_id);
}

void bus_emit_control_queued(Manager *m, const char *task_id, ControlKind kind) {
        int r;

        if (!m->bus)
                return;
        r = sd_bus_emit_signal(m->bus, BUS_PATH, BUS_INTERFACE, "ControlQueued", "ss", task_id,
                               control_kind_to_string(kind));
        if (r < 0)
                log_debug_errno(r, "Failed to emit ControlQueued(%s): %m", task_id);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /api/v1/notifications: what makima has to tell a user that belongs to no
 * single event log ("the agent is not logged in on worker 1"). Owners see
 * their own, administrators everybody's; reading one marks it read. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

static int notification_to_json(const Notification *n, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        int k = 0;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        k = k ?: json_add_string(o, "id", n->id);
        k = k ?: json_add_string(o, "owner", n->owner);
        k = k ?: json_add_string(o, "level", n->level);
        k = k ?: json_add_string(o, "message", n->message);
        k = k ?: json_add_string(o, "task_id", n->task_id);
        k = k ?: json_add_string(o, "contract_id", n->contract_id);
        k = k ?: json_add_timestamp(o, "created_at", n->created_at);
        k = k ?: json_add_timestamp(o, "read_at", n->read_at);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

static int notification_item_json(const void *items, size_t i, json_object **ret) {
        return notification_to_json((const Notification *) items + i, ret);
}

int api_notifications_list(Request *r) {
        Notification *items = NULL;
        size_t n = 0, limit;
        bool unread;
        int k;

        k = request_query_size(r, "limit", 100, 1, 1000, &limit);
        if (k < 0)
                return k;
        k = request_query_bool(r, "unread", false, &unread);
        if (k < 0)
                return k;

        k = store_notification_list(r->manager->store, r->admin ? NULL : r->owner, unread, limit, &items, &n);
        if (k < 0)
                return request_reply_store_error(r, k, "notifications", NULL);

        k = request_reply_list(r, "notifications", items, n, notification_item_json);
        notification_array_free(items, n);
        return k;
}

/* An owner's notification is found among its own; the store has no lookup by id. */
static int owner_has_notification(Request *r, const char *id) {
        Notification *items = NULL;
        size_t n = 0;
        bool found = false;
        int k;

        k = store_notification_list(r->manager->store, r->owner, false, 0, &items, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n && !found; i++)
                found = streq(items[i].id, id);
        notification_array_free(items, n);
        return found;
}

int api_notification_read(Request *r) {
        int k;

        if (!r->admin) {
                k = owner_has_notification(r, r->id);
                if (k < 0)
                        return request_reply_store_error(r, k, "notification", NULL);
                if (k == 0)
                        return request_reply_not_found(r, "notification");
        }
        k = store_notification_mark_read(r->manager->store, r->id);
        if (k < 0)
                return request_reply_store_error(r, k, "notification", NULL);
        return request_reply_no_content(r);
}

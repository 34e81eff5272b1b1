/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The steps the per-resource handlers share: finding the object of the URL
 * for the caller, checking a body's version and the objects it names, paging
 * a list, and answering one object or a list of them. */

#include "api-http.h"
#include "api-manager.h"
#include "json-util.h"
#include "log.h"

int request_check_found(Request *r, int error, const char *owner, const char *what) {
        if (error < 0)
                return request_reply_store_error(r, error, what, NULL), error;
        /* Another owner's object is not found either: its existence is not the caller's to learn. */
        if (!request_may_see(r, owner))
                return request_reply_not_found(r, what), -ENOENT;
        return 0;
}

bool request_has_field(Request *r, const char *field) {
        return json_object_object_get_ex(r->body, field, NULL);
}

int request_check_body_version(Request *r, int64_t version) {
        if (request_has_field(r, "version") && version < 1)
                return request_reply_field(r, "version", "expected a positive integer"), -EINVAL;
        return 0;
}

int request_reply_object(Request *r, unsigned status, const void *object, RequestToJson to_json,
                         const char *collection, const char *id) {
        _cleanup_json_ json_object *o = NULL;
        int k;

        k = to_json(object, &o);
        if (k < 0)
                return k;
        if (status == 201)
                return request_reply_created(r, o, collection, id);
        return request_reply_json(r, status, o);
}

int request_reply_list(Request *r, const char *key, const void *items, size_t n, RequestItemToJson to_json) {
        _cleanup_json_ json_object *o = NULL;
        json_object *a;
        int k;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        a = json_object_new_array_ext((int) n);
        if (!a || json_object_object_add(o, key, a) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *e;

                k = to_json(items, i, &e);
                if (k < 0)
                        return k;
                if (json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        return request_reply_json(r, 200, o);
}

int request_query_page(Request *r, size_t *ret_limit, size_t *ret_offset) {
        size_t limit, offset;
        int k;

        k = request_query_size(r, "limit", 100, 1, 1000, &limit);
        if (k < 0)
                return k;
        k = request_query_size(r, "offset", 0, 0, SIZE_MAX / 2, &offset);
        if (k < 0)
                return k;
        *ret_limit = limit;
        *ret_offset = offset;
        return 0;
}

int request_check_reference(Request *r, int error, const char *owner, const char *field, const char *what) {
        /* As with the object of the URL, one the caller may not see does not exist for it. */
        if (error == -ENOENT || (error >= 0 && !request_may_see(r, owner)))
                return request_reply_field(r, field, "no such %s", what), -EINVAL;
        if (error < 0)
                return request_reply_store_error(r, error, what, NULL), error;
        return 0;
}

int request_resource_load(Request *r, const Resource *res, void **ret) {
        void *o = NULL;
        int k;

        k = res->get(r->manager->store, r->id, &o);
        k = request_check_found(r, k, o ? res->owner(o) : NULL, res->what);
        if (k < 0) {
                if (o)
                        res->free(o);
                return k;
        }
        *ret = o;
        return 0;
}

int request_resource_load_at(Request *r, const Resource *res, int64_t version, void **ret) {
        void *o;
        int k;

        k = request_resource_load(r, res, &o);
        if (k < 0)
                return k;
        k = request_check_version(r, version, res->version(o), res->what);
        if (k < 0) {
                res->free(o);
                return k;
        }
        *ret = o;
        return 0;
}

int request_resource_reply(Request *r, const Resource *res, unsigned status, const void *object) {
        return request_reply_object(r, status, object, res->to_json, res->collection, res->id(object));
}

int request_resource_get(Request *r, const Resource *res) {
        void *o;
        int k;

        k = request_resource_load(r, res, &o);
        if (k < 0)
                return k;
        k = request_resource_reply(r, res, 200, o);
        res->free(o);
        return k;
}

int request_resource_delete(Request *r, const Resource *res, const char *busy_message) {
        int64_t version;
        void *o;
        int k;

        k = request_query_int64(r, "version", -1, &version);
        if (k < 0)
                return k;
        k = request_resource_load(r, res, &o);
        if (k < 0)
                return k;

        k = res->delete(r->manager->store, res->id(o), version);
        if (k >= 0)
                log_debug("Deleted %s %s.", res->what, res->id(o));
        res->free(o);
        if (k < 0)
                return request_reply_store_error(r, k, res->what, busy_message);
        return request_reply_no_content(r);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The steps the per-resource handlers share: finding the object of the URL
 * for the caller, checking a body's version, and answering one object or a
 * list of them. */

#include "api-http.h"
#include "json-util.h"

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

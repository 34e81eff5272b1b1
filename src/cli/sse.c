/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Server-Sent Events parser of sse.h, after the "event stream
 * interpretation" of the HTML standard: lines end with CRLF, LF or CR (a CR
 * at the end of one piece and an LF at the start of the next are one line
 * break); "field: value" lines fill the event; an empty line dispatches it;
 * lines starting with ':' are comments. */

#include "sse.h"

typedef struct Buffer {
        char *data;
        size_t size, allocated;
} Buffer;

struct SseParser {
        Buffer line;                    /* the line read so far */
        Buffer data;                    /* the event's data lines, each followed by \n */
        Buffer type;                    /* the event's type, "" for the default */
        Buffer id;                      /* the id buffer of the standard */
        Buffer last_id;                 /* the id of the last dispatched event */
        int64_t retry;
        bool started;                   /* the first byte (a BOM?) was seen */
        bool after_cr;                  /* the last byte was a CR: a following LF ends nothing */
        bool failed;
};

/* Keeps a NUL after the content, so a buffer is always a C string. */
static int buffer_append(Buffer *b, const char *s, size_t n, size_t max) {
        if (n > max || b->size > max - n)
                return -E2BIG;
        if (b->size + n + 1 > b->allocated) {
                size_t a = MAX(MAX(b->allocated * 2, b->size + n + 1), (size_t) 64);
                char *d = realloc(b->data, a);

                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->allocated = a;
        }
        if (n > 0)
                memcpy(b->data + b->size, s, n);
        b->size += n;
        b->data[b->size] = '\0';
        return 0;
}

static int buffer_set(Buffer *b, const char *s, size_t n) {
        b->size = 0;
        return buffer_append(b, s, n, SSE_LINE_MAX);
}

static const char *buffer_str(const Buffer *b) {
        return b->data ?: "";
}

int sse_parser_new(SseParser **ret) {
        SseParser *p = calloc(1, sizeof(SseParser));

        if (!p)
                return -ENOMEM;
        p->retry = -1;
        *ret = p;
        return 0;
}

SseParser *sse_parser_free(SseParser *p) {
        if (!p)
                return NULL;
        free(p->line.data);
        free(p->data.data);
        free(p->type.data);
        free(p->id.data);
        free(p->last_id.data);
        return mfree(p);
}

const char *sse_parser_last_event_id(const SseParser *p) {
        return buffer_str(&p->last_id);
}

int64_t sse_parser_retry(const SseParser *p) {
        return p->retry;
}

static int dispatch(SseParser *p, SseCallback cb, void *userdata) {
        SseEvent e;
        int r;

        r = buffer_set(&p->last_id, buffer_str(&p->id), p->id.size);
        if (r < 0)
                return r;
        /* No data line: nothing to dispatch, and the type is forgotten. */
        if (p->data.size == 0) {
                p->type.size = 0;
                return 0;
        }
        /* The data ends without its last line break. */
        p->data.data[--p->data.size] = '\0';

        e = (SseEvent) {
                .type = p->type.size > 0 ? buffer_str(&p->type) : "message",
                .data = buffer_str(&p->data),
                .data_size = p->data.size,
                .id = buffer_str(&p->last_id),
        };
        r = cb ? cb(&e, userdata) : 0;
        p->data.size = 0;
        p->type.size = 0;
        if (p->data.data)
                p->data.data[0] = '\0';
        return r < 0 ? r : 0;
}

static bool all_digits(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static int process_line(SseParser *p, SseCallback cb, void *userdata) {
        const char *l = buffer_str(&p->line), *colon, *value;
        size_t n = p->line.size, field_size, value_size;

        if (n == 0)
                return dispatch(p, cb, userdata);
        if (l[0] == ':')
                return 0;               /* a comment: keepalives */

        colon = memchr(l, ':', n);
        if (colon) {
                field_size = (size_t) (colon - l);
                value = colon + 1;
                if (value < l + n && *value == ' ')
                        value++;
                value_size = (size_t) (l + n - value);
        } else {
                field_size = n;
                value = l + n;
                value_size = 0;
        }

#define FIELD_IS(name) (field_size == strlen(name) && memcmp(l, name, field_size) == 0)
        if (FIELD_IS("event"))
                return buffer_set(&p->type, value, value_size);
        if (FIELD_IS("data")) {
                int r = buffer_append(&p->data, value, value_size, SSE_DATA_MAX - 1);
                return r < 0 ? r : buffer_append(&p->data, "\n", 1, SSE_DATA_MAX);
        }
        if (FIELD_IS("id")) {
                if (memchr(value, '\0', value_size))
                        return 0;       /* ignored, as the standard says */
                return buffer_set(&p->id, value, value_size);
        }
        if (FIELD_IS("retry")) {
                if (all_digits(value, value_size) && value_size <= 12)
                        p->retry = (int64_t) strtoll(value, NULL, 10);
                return 0;
        }
#undef FIELD_IS
        return 0;                       /* unknown fields are ignored */
}

int sse_parser_feed(SseParser *p, const void *data, size_t size, SseCallback cb, void *userdata) {
        const char *d = data, *end = d + size;
        int r;

        if (p->failed)
                return -EINVAL;

        /* One byte order mark may open the stream. Its first bytes wait in the
         * line buffer until we know: if something else follows, they were text. */
        if (!p->started && size > 0) {
                static const char bom[] = "\xef\xbb\xbf";
                size_t have = MIN(size, sizeof(bom) - 1 - p->line.size);

                if (memcmp(d, bom + p->line.size, have) != 0)
                        p->started = true;
                else {
                        r = buffer_append(&p->line, d, have, SSE_LINE_MAX);
                        if (r < 0)
                                goto fail;
                        d += have;
                        if (p->line.size < sizeof(bom) - 1)
                                return 0;
                        p->line.size = 0;
                        p->started = true;
                }
        }

        while (d < end) {
                const char *br = d;

                if (p->after_cr) {
                        p->after_cr = false;
                        if (*d == '\n') {
                                d++;
                                continue;
                        }
                }
                while (br < end && *br != '\n' && *br != '\r')
                        br++;
                r = buffer_append(&p->line, d, (size_t) (br - d), SSE_LINE_MAX);
                if (r < 0)
                        goto fail;
                if (br == end)
                        break;

                p->after_cr = *br == '\r';
                d = br + 1;
                r = process_line(p, cb, userdata);
                p->line.size = 0;
                if (r < 0)
                        goto fail;
        }
        return 0;

fail:
        p->failed = true;
        return r;
}

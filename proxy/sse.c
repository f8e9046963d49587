/*
 * sse.c — cutting a byte stream into Server-Sent Events (see sse.h).
 *
 * Pieces are appended to one contiguous buffer, and the search for the
 * end of an event resumes where it stopped, so an event that arrives one
 * byte at a time is scanned once, not once per byte.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Offset just past the empty line that ends the first event in buf[0..len),
 * with *evlen the length before that empty line; 0 when incomplete. */
static size_t event_end(const char *buf, size_t len, size_t *scanned, size_t *line_start,
                        size_t *evlen)
{
    size_t i = *scanned;
    for (; i < len; i++) {
        if (buf[i] != '\n' && buf[i] != '\r')
            continue;
        if (buf[i] == '\r' && i + 1 == len)
            break; /* a CR at the end: an LF may follow */
        size_t next = i + (buf[i] == '\r' && buf[i + 1] == '\n' ? 2 : 1);
        if (i == *line_start) {
            *evlen = i;
            *scanned = *line_start = 0;
            return next;
        }
        *line_start = next;
        i = next - 1;
    }
    *scanned = i;
    return 0;
}

int cairn_sse_split(struct cairn_sse_splitter *s, const char *data, size_t len,
                    cairn_sse_event_fn fn, void *ctx)
{
    if (len == 0)
        return 0;
    if (s->npending + len > s->cap) {
        s->cap = (s->npending + len) * 2;
        s->pending = cairn_realloc(s->pending, s->cap);
    }
    memcpy(s->pending + s->npending, data, len);
    s->npending += len;
    size_t used = 0; /* bytes of complete events handled */
    bool stopped = false;
    while (!stopped) {
        size_t evlen = 0;
        const char *buf = s->pending + used;
        size_t end = event_end(buf, s->npending - used, &s->scanned, &s->line_start, &evlen);
        if (end == 0)
            break;
        used += end;
        stopped = !fn(ctx, buf, evlen, end);
    }
    if (used > 0) {
        memmove(s->pending, s->pending + used, s->npending - used);
        s->npending -= used;
    }
    /* What is left after a stop is the caller's, not an event in progress. */
    return !stopped && s->npending > CAIRN_SSE_MAX_EVENT ? -1 : 0;
}

size_t cairn_sse_take_pending(struct cairn_sse_splitter *s, char **out)
{
    size_t n = s->npending;
    *out = n > 0 ? s->pending : NULL;
    if (n == 0)
        free(s->pending);
    s->pending = NULL;
    s->npending = s->cap = s->scanned = s->line_start = 0;
    return n;
}

void cairn_sse_splitter_free(struct cairn_sse_splitter *s)
{
    free(s->pending);
    memset(s, 0, sizeof(*s));
}

size_t cairn_sse_event_data(const char *ev, size_t len, const char **data, size_t *dlen)
{
    size_t ndata = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && ev[e] != '\n' && ev[e] != '\r')
            e++;
        if (e - i >= 5 && memcmp(ev + i, "data:", 5) == 0) {
            *data = ev + i + 5;
            *dlen = e - i - 5;
            if (*dlen > 0 && **data == ' ') {
                (*data)++;
                (*dlen)--;
            }
            ndata++;
        }
        i = e + (e < len && ev[e] == '\r' && e + 1 < len && ev[e + 1] == '\n' ? 2 : 1);
    }
    return ndata;
}

bool cairn_sse_is_done(const char *data, size_t dlen)
{
    return dlen == 6 && memcmp(data, "[DONE]", 6) == 0;
}

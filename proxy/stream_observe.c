/*
 * stream_observe.c — collect a stream's answer and hold its end (see
 * stream_observe.h).
 *
 * Events pass through in order and unchanged; only the [DONE] event waits
 * for the end of the transfer. Chunks that do not parse, or that carry no
 * content for choice 0, are relayed without a second look.
 */
#include "stream_observe.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "alloc.h"
#include "json_strict.h"
#include "sse.h"

struct cairn_stream_observer {
    struct cairn_sse_splitter split;
    struct evbuffer *out; /* where the event being handled goes */
    char *text;           /* owned: choice 0's content so far */
    size_t ntext, cap, max_text;
    char *done_event; /* owned: the [DONE] event, held */
    size_t ndone;
    bool released; /* the report and [DONE] went out */
};

struct cairn_stream_observer *cairn_stream_observer_new(size_t max_text)
{
    struct cairn_stream_observer *o = cairn_calloc(1, sizeof(*o));
    o->max_text = max_text;
    return o;
}

void cairn_stream_observer_free(struct cairn_stream_observer *o)
{
    if (o == NULL)
        return;
    cairn_sse_splitter_free(&o->split);
    free(o->text);
    free(o->done_event);
    free(o);
}

static void collect(struct cairn_stream_observer *o, const char *s, size_t n)
{
    if (o->ntext + n > o->max_text)
        n = o->max_text - o->ntext; /* the rest is not read (attempts.c says why) */
    if (n == 0)
        return;
    if (o->ntext + n + 1 > o->cap) {
        o->cap = (o->ntext + n + 1) * 2;
        o->text = cairn_realloc(o->text, o->cap);
    }
    memcpy(o->text + o->ntext, s, n);
    o->ntext += n;
    o->text[o->ntext] = '\0';
}

/* choices[index 0].delta.content of one chunk. */
static void read_chunk(struct cairn_stream_observer *o, const char *data, size_t dlen)
{
    char why[64];
    cJSON *chunk = cairn_json_parse_strict(data, dlen, 64, why, sizeof(why));
    const cJSON *choice;
    cJSON_ArrayForEach(choice, cJSON_GetObjectItemCaseSensitive(chunk, "choices"))
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(choice, "index");
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
        if ((index == NULL || (cJSON_IsNumber(index) && index->valuedouble == 0)) &&
            cJSON_IsString(content))
            collect(o, content->valuestring, strlen(content->valuestring));
    }
    cJSON_Delete(chunk);
}

static bool on_event(void *ctx, const char *ev, size_t len, size_t rawlen)
{
    struct cairn_stream_observer *o = ctx;
    const char *data = NULL;
    size_t dlen = 0;
    if (cairn_sse_event_data(ev, len, &data, &dlen) == 1) {
        if (cairn_sse_is_done(data, dlen) && o->done_event == NULL && !o->released) {
            o->done_event = cairn_malloc(rawlen);
            memcpy(o->done_event, ev, rawlen);
            o->ndone = rawlen;
            return true;
        }
        if (dlen > 0 && data[0] == '{')
            read_chunk(o, data, dlen);
    }
    evbuffer_add(o->out, ev, rawlen);
    return true;
}

int cairn_stream_observer_feed(struct cairn_stream_observer *o, const char *data, size_t len,
                               struct evbuffer *out)
{
    o->out = out;
    return cairn_sse_split(&o->split, data, len, on_event, o);
}

const char *cairn_stream_observer_text(const struct cairn_stream_observer *o, size_t *len)
{
    *len = o->ntext;
    return o->text != NULL ? o->text : "";
}

bool cairn_stream_observer_done(const struct cairn_stream_observer *o)
{
    return o->done_event != NULL && !o->released;
}

void cairn_stream_observer_finish(struct cairn_stream_observer *o, const char *comment,
                                  struct evbuffer *out)
{
    if (!o->released) {
        if (comment != NULL)
            evbuffer_add_printf(out, ": %s\n\n", comment);
        if (o->done_event != NULL)
            evbuffer_add(out, o->done_event, o->ndone);
        o->released = true;
    }
    char *rest;
    size_t n = cairn_sse_take_pending(&o->split, &rest);
    if (n > 0)
        evbuffer_add(out, rest, n);
    free(rest);
}

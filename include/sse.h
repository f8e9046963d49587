/*
 * sse.h — Server-Sent Events as a stream of whole events (WHATWG HTML,
 * "server-sent events": an empty line ends an event; lines end in CRLF,
 * LF or CR), for the stages that read an answer as it is relayed.
 */
#ifndef CAIRN_SSE_H
#define CAIRN_SSE_H

#include <stdbool.h>
#include <stddef.h>

#define CAIRN_SSE_MAX_EVENT (1024 * 1024) /* one event; a longer one breaks the stream */

struct cairn_sse_splitter {
    char *pending; /* owned: bytes of an incomplete event (contiguous, so
                      that pieces append without copying the rest) */
    size_t npending, cap;
    size_t scanned;    /* of `pending`, searched for the end of an event */
    size_t line_start; /* where in `pending` the line being read starts */
};

/**
 * Called for each complete event: ev[0..len) without the empty line that
 * ends it, ev[0..rawlen) with it. Return false to stop splitting: the
 * bytes after this event stay pending (cairn_sse_take_pending).
 */
typedef bool (*cairn_sse_event_fn)(void *ctx, const char *ev, size_t len, size_t rawlen);

/** Feed bytes; complete events go to `fn` in order.
 *  @return 0, or -1 when an event grows past CAIRN_SSE_MAX_EVENT. */
int cairn_sse_split(struct cairn_sse_splitter *s, const char *data, size_t len,
                    cairn_sse_event_fn fn, void *ctx);

/** The bytes not yet part of a complete event (moved out: the caller owns
 *  *out, NULL when none). @return their length. */
size_t cairn_sse_take_pending(struct cairn_sse_splitter *s, char **out);

void cairn_sse_splitter_free(struct cairn_sse_splitter *s);

/**
 * The data of an event: when it has exactly one "data:" line, *data and
 * *dlen point at its value (one leading space removed). @return the number
 * of data lines (0 for a comment or an event of only id:/event:/retry:).
 */
size_t cairn_sse_event_data(const char *ev, size_t len, const char **data, size_t *dlen);

/** Whether one data value is the end marker "[DONE]". */
bool cairn_sse_is_done(const char *data, size_t dlen);

#endif

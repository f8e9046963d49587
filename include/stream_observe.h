/*
 * stream_observe.h — read a chat completion stream as it is relayed: the
 * text of its first choice is collected for validation, and the closing
 * "data: [DONE]" event is held back so that a report can go out just
 * before it (as an SSE comment, which clients ignore).
 */
#ifndef CAIRN_STREAM_OBSERVE_H
#define CAIRN_STREAM_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct cairn_stream_observer;

/** An observer that collects at most `max_text` bytes of answer text. */
struct cairn_stream_observer *cairn_stream_observer_new(size_t max_text);
void cairn_stream_observer_free(struct cairn_stream_observer *o);

/** Feed the bytes on their way to the client; what may go now is appended
 *  to `out`. @return 0, or -1 when an event grows past its limit. */
int cairn_stream_observer_feed(struct cairn_stream_observer *o, const char *data, size_t len,
                               struct evbuffer *out);

/** The first choice's text so far. @return NULL when it grew past
 *  max_text (it cannot be validated whole). */
const char *cairn_stream_observer_text(const struct cairn_stream_observer *o, size_t *len);

/** The stream ended: `comment` (may be NULL; one line, no line breaks) as
 *  ": comment", then the held [DONE] event and any bytes still pending. */
void cairn_stream_observer_finish(struct cairn_stream_observer *o, const char *comment,
                                  struct evbuffer *out);

#endif

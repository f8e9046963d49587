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

/** An observer that collects the first `max_text` bytes of answer text
 *  (the rest of a longer answer passes unread). */
struct cairn_stream_observer *cairn_stream_observer_new(size_t max_text);
void cairn_stream_observer_free(struct cairn_stream_observer *o);

/** Feed the bytes on their way to the client; what may go now is appended
 *  to `out`. @return 0, or -1 when an event grows past its limit. */
int cairn_stream_observer_feed(struct cairn_stream_observer *o, const char *data, size_t len,
                               struct evbuffer *out);

/** The first choice's text so far (at most max_text bytes). */
const char *cairn_stream_observer_text(const struct cairn_stream_observer *o, size_t *len);

/** Whether the [DONE] event has come and is held: the answer is complete,
 *  and the report can go out now rather than when the transfer ends. */
bool cairn_stream_observer_done(const struct cairn_stream_observer *o);

/** Release `comment` (may be NULL; one line, no line breaks) as
 *  ": comment", then the held [DONE] event (both once only), then any
 *  bytes still pending. Events after it pass through. */
void cairn_stream_observer_finish(struct cairn_stream_observer *o, const char *comment,
                                  struct evbuffer *out);

#endif

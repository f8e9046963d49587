/*
 * unwrap.h — remove the marker block a marker-trained model writes at the
 * start of its answer, from whole JSON answers and from SSE streams.
 *
 * In a stream the block may arrive split across any number of events, one
 * character per event at worst: each choice's content is held back only
 * while it can still be the start of a block, and a stream that does not
 * start with one is passed on at once. The markers read from the block
 * are offered to `model` with CAIRN_SRC_MODEL.
 */
#ifndef CAIRN_UNWRAP_H
#define CAIRN_UNWRAP_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "marker_block.h"

struct evbuffer;

/** Remove a leading block from every choices[].message.content of a chat
 *  completion. @return how many choices had one. */
size_t cairn_unwrap_json(const struct cairn_marker_format *f, cJSON *completion,
                         struct cairn_markers *model);

struct cairn_sse_unwrap;

/** For a stream of `nchoices` choices (the request's n). */
struct cairn_sse_unwrap *cairn_sse_unwrap_new(const struct cairn_marker_format *f, size_t nchoices,
                                              struct cairn_markers *model);
void cairn_sse_unwrap_free(struct cairn_sse_unwrap *u);

/**
 * Feed upstream bytes; what the client should get now is appended to
 * `out` (whole events, rewritten where content was held or cut).
 * @return 0, or -1 when an event grows past its limit (a broken stream).
 */
int cairn_sse_unwrap_feed(struct cairn_sse_unwrap *u, const char *data, size_t len,
                          struct evbuffer *out);

/** The stream ended: release whatever is still held (text, a partial
 *  event) into `out`, so nothing the upstream sent is lost. */
void cairn_sse_unwrap_finish(struct cairn_sse_unwrap *u, struct evbuffer *out);

/** True once every choice is past its start and nothing is held: from
 *  then on the upstream bytes can be relayed untouched. */
bool cairn_sse_unwrap_done(const struct cairn_sse_unwrap *u);

#endif

/*
 * completion_stream.h — a whole chat completion replayed as the
 * chat.completion.chunk events a streamed answer would have had, for
 * streams that cairn holds back until their answer is validated.
 */
#ifndef CAIRN_COMPLETION_STREAM_H
#define CAIRN_COMPLETION_STREAM_H

#include <stdbool.h>

#include <cjson/cJSON.h>

struct evbuffer;

/**
 * Per choice, one chunk with the role and the whole content (and tool
 * calls, if any), then one with its finish_reason; then, when
 * `include_usage` (the request's stream_options.include_usage), a chunk
 * with "choices": [] and the usage; then `comment` (may be NULL) as an SSE
 * comment line, then "data: [DONE]".
 */
void cairn_completion_to_sse(const cJSON *completion, bool include_usage, const char *comment,
                             struct evbuffer *out);

#endif

/*
 * completion_stream.c — a chat completion as chunk events (see
 * completion_stream.h).
 *
 * The events carry what OpenAI's own streams carry: the completion's id,
 * created, model and system_fingerprint on every chunk, "object":
 * "chat.completion.chunk", and per choice a delta; a client library
 * rebuilds the same message from them as from the upstream's own stream.
 */
#include "completion_stream.h"

#include <stdlib.h>

#include <event2/buffer.h>

#include "json_strict.h"

static cJSON *chunk_shell(const cJSON *completion)
{
    static const char *const fields[] = {"id", "created", "model", "system_fingerprint"};
    cJSON *chunk = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(completion, fields[i]);
        if (f != NULL)
            cJSON_AddItemToObject(chunk, fields[i], cJSON_Duplicate(f, true));
        if (i == 0)
            cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk");
    }
    return chunk;
}

static void emit(cJSON *chunk, struct evbuffer *out)
{
    size_t n;
    char *text = cairn_json_print(chunk, &n);
    evbuffer_add(out, "data: ", 6);
    evbuffer_add(out, text, n);
    evbuffer_add(out, "\n\n", 2);
    free(text);
    cJSON_Delete(chunk);
}

/* A chunk with one choice: its index, `delta` (taken), and finish_reason. */
static void emit_choice(const cJSON *completion, const cJSON *index, cJSON *delta,
                        const cJSON *finish, struct evbuffer *out)
{
    cJSON *chunk = chunk_shell(completion);
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddItemToObject(choice, "index",
                          index != NULL ? cJSON_Duplicate(index, true) : cJSON_CreateNumber(0));
    cJSON_AddItemToObject(choice, "delta", delta);
    cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddItemToObject(choice, "finish_reason",
                          finish != NULL ? cJSON_Duplicate(finish, true) : cJSON_CreateNull());
    cJSON_AddItemToArray(cJSON_AddArrayToObject(chunk, "choices"), choice);
    emit(chunk, out);
}

void cairn_completion_to_sse(const cJSON *completion, bool include_usage, const char *comment,
                             struct evbuffer *out)
{
    const cJSON *choice;
    cJSON_ArrayForEach(choice, cJSON_GetObjectItemCaseSensitive(completion, "choices"))
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(choice, "index");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(choice, "message");
        cJSON *delta = cJSON_CreateObject();
        const cJSON *m;
        cJSON_ArrayForEach(m, message)
        {
            cJSON_AddItemToObject(delta, m->string, cJSON_Duplicate(m, true));
        }
        /* Streamed tool calls are numbered: clients join their pieces by index. */
        cJSON *call;
        int i = 0;
        cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(delta, "tool_calls"))
        {
            if (cJSON_IsObject(call) && !cJSON_HasObjectItem(call, "index"))
                cJSON_AddNumberToObject(call, "index", i);
            i++;
        }
        emit_choice(completion, index, delta, NULL, out);
        emit_choice(completion, index, cJSON_CreateObject(),
                    cJSON_GetObjectItemCaseSensitive(choice, "finish_reason"), out);
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(completion, "usage");
    if (include_usage && usage != NULL) {
        cJSON *chunk = chunk_shell(completion);
        cJSON_AddArrayToObject(chunk, "choices");
        cJSON_AddItemToObject(chunk, "usage", cJSON_Duplicate(usage, true));
        emit(chunk, out);
    }
    if (comment != NULL)
        evbuffer_add_printf(out, ": %s\n\n", comment);
    evbuffer_add(out, "data: [DONE]\n\n", 14);
}

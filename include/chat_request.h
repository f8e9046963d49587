/*
 * chat_request.h — the validated model of an OpenAI chat completion request.
 *
 * A request body is parsed once (strictly, see json_strict.h) and checked
 * against the fields cairn relies on; the body sent upstream is printed
 * from this tree, never copied from the client's bytes, so what was
 * validated is exactly what is forwarded. Later stages (markers, retries)
 * rewrite the tree before it is printed.
 */
#ifndef CAIRN_CHAT_REQUEST_H
#define CAIRN_CHAT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct cairn_chat_request {
    cJSON *root;       /* owned: the whole request object */
    const char *model; /* borrowed from root */
    cJSON *messages;   /* borrowed from root: a non-empty array */
    bool stream;
};

/**
 * Parse and validate a chat completion body.
 * @return 0 and `req` filled (release with cairn_chat_request_free), or -1
 *         with `err` holding a message fit for an API error that names the
 *         offending field (e.g. "messages[2].content must be ...").
 */
int cairn_chat_request_parse(struct cairn_chat_request *req, const char *body, size_t len,
                             int max_depth, char *err, size_t errlen);

/** The upstream body: the validated tree printed compactly and with exact
 *  numbers (malloc'd, never NULL). */
char *cairn_chat_request_print(const struct cairn_chat_request *req, size_t *len);

void cairn_chat_request_free(struct cairn_chat_request *req);

/**
 * The body of a request cairn sends a model on its own account (the
 * annotator model, a judge): {"model", "messages": [{"role": "system",
 * "content": system}, {"role": "user", "content": user}], "temperature": 0,
 * "max_tokens": max_tokens, "stream": false}.
 * @return a malloc'd JSON text of *len bytes, NUL-terminated; never NULL.
 */
char *cairn_chat_request_internal(const char *model, const char *system, const char *user,
                                  int max_tokens, size_t *len);

/** choices[0].message.content of a chat completion when it is a string,
 *  else NULL (a tool call, a refusal without text, not a completion). */
const char *cairn_chat_completion_text(const cJSON *completion);

#endif

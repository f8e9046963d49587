/*
 * model_annotator.h — the annotator model's prompt, the request cairn sends
 * it and the strict reading of its answer (DESIGN.md, "Annotators": one
 * extra call to a small model behind an OpenAI-compatible API, with a
 * few-shot prompt that returns a <MARKER_LIST> block).
 *
 * Nothing here does I/O on the request path: the prompt is built once at
 * load time, and the request body and the answer are plain bytes that the
 * caller sends and receives. The answer is untrusted input: every marker in
 * it is checked against the taxonomy, and anything cairn cannot use is
 * dropped and counted, never offered.
 */
#ifndef CAIRN_MODEL_ANNOTATOR_H
#define CAIRN_MODEL_ANNOTATOR_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "markers.h"
#include "taxonomy.h"

#define CAIRN_MODEL_PROMPT_FILE   "annotator_prompt.txt" /* in rules_dir */
#define CAIRN_MODEL_PROMPT_MAX    (64 * 1024)            /* bytes of the prompt file */
#define CAIRN_MODEL_PLACEHOLDER   "{{taxonomy}}"
#define CAIRN_MODEL_BODY_MAX      (1024 * 1024) /* bytes of the annotator's answer */
#define CAIRN_MODEL_BODY_DEPTH    32            /* JSON nesting of the answer */
#define CAIRN_MODEL_MAX_TOKENS    256           /* max_tokens of the request */
#define CAIRN_MODEL_PROMPT_ID_LEN 32            /* SHA-256 */

/* The block the annotator answers with: the default template's delimiters
 * (case-sensitive), whatever template the backend uses. */
#define CAIRN_MODEL_BLOCK_OPEN  "<MARKER_LIST>"
#define CAIRN_MODEL_BLOCK_CLOSE "</MARKER_LIST>"

struct cairn_model_prompt;

/**
 * Read the prompt template at `path` and build the final system text once:
 * CAIRN_MODEL_PLACEHOLDER (required, exactly once) becomes one line per tag
 * of `tx`, by wire name, in taxonomy order ("- <task>: one of OpenEnded,
 * ..."; numeric tags give their range, as an upper limit stated in the
 * conversation). Every <MARKER_LIST> block of the template (the worked
 * examples) must close and hold only <tag>value</tag> lines: each is
 * checked against `tx` and written with the tag's wire name and the
 * value's canonical spelling; a line whose tag `tx` lacks is left out (the
 * deployment dropped the tag), a value `tx` does not allow, a repeated tag
 * or any other text in a block is an error. `tx` is read during the call
 * only.
 * @return the prompt, or NULL with `err` naming the file (and the line) and
 *         the problem.
 */
struct cairn_model_prompt *cairn_model_prompt_load(const struct cairn_taxonomy *tx,
                                                   const char *path, char *err, size_t errlen);
/** Free a prompt (NULL is fine). */
void cairn_model_prompt_free(struct cairn_model_prompt *p);

/** The final system text, NUL-terminated (owned by the prompt). */
const char *cairn_model_prompt_text(const struct cairn_model_prompt *p);

/** SHA-256 of the final system text: the prompt's identity in cache keys
 *  (it changes with the file and with the taxonomy). */
void cairn_model_prompt_id(const struct cairn_model_prompt *p,
                           unsigned char out[CAIRN_MODEL_PROMPT_ID_LEN]);

/**
 * A conversation as one text: every message of the OpenAI `messages` array
 * that has text, as "ROLE: text" (role uppercased), turns separated by a
 * blank line; of a content array only {"type": "text"} parts count, joined
 * by '\n' (images, audio and tool calls are left out). When it is longer
 * than `max_bytes`, its last bytes are kept, cut on a UTF-8 character
 * boundary (the end of a conversation is what is being answered).
 * @return a malloc'd NUL-terminated text; never NULL.
 */
char *cairn_model_conversation(const cJSON *messages, size_t max_bytes);

/**
 * The chat completion request body for the annotator endpoint:
 *   {"model": model, "messages": [{"role": "system", "content": prompt},
 *    {"role": "user", "content": conversation}], "temperature": 0,
 *    "max_tokens": CAIRN_MODEL_MAX_TOKENS, "stream": false}
 * with the conversation as cairn_model_conversation renders it, at most
 * `max_conversation_bytes` of its end (the end of a conversation decides
 * its markers). The text is taken as it is here; the gateway hands over
 * messages whose marker-looking text is already neutralised (marking.h),
 * so a caller cannot type markers into the annotator's answer either.
 * @return a malloc'd JSON text of *len bytes, NUL-terminated; never NULL.
 */
char *cairn_model_annotator_request(const struct cairn_model_prompt *p, const char *model,
                                    const cJSON *messages, size_t max_conversation_bytes,
                                    size_t *len);

enum cairn_model_outcome {
    CAIRN_MODEL_OK,         /* a block was found (it may be empty or have drops) */
    CAIRN_MODEL_UNPARSABLE, /* no usable block: the caller falls back to rules */
};

/**
 * Read the annotator endpoint's response body body[0..len) — a chat
 * completion — strictly: at most CAIRN_MODEL_BODY_MAX bytes, strict JSON
 * (json_strict.h) at most CAIRN_MODEL_BODY_DEPTH deep, and
 * choices[0].message.content a string. The first CAIRN_MODEL_BLOCK_OPEN in
 * the content starts the block wherever it is (text or a ``` fence around
 * it is ignored) and the first CAIRN_MODEL_BLOCK_CLOSE after it ends it.
 * Inside, each <tag>value</tag> (one or more per line, CRLF or LF; the
 * value on one line, without '<' or '>') names its tag by key or wire name
 * (any case); its value is checked and canonicalised against `tx`
 * (numbers in plain decimal only). Each such marker is offered to `out`
 * with CAIRN_SRC_MODEL; an unknown tag, a value the taxonomy does not allow
 * (or longer than CAIRN_MARKER_VALUE_MAX - 1 bytes), every occurrence of a
 * tag given more than once, and each stretch of other text (up to the end
 * of its line) is counted in *dropped instead.
 * @return CAIRN_MODEL_OK when a block closes (possibly empty, possibly with
 *         drops), else CAIRN_MODEL_UNPARSABLE with `out` left untouched.
 *         *dropped (may be NULL) is set in both cases.
 */
enum cairn_model_outcome cairn_model_annotator_parse(const struct cairn_taxonomy *tx,
                                                     const char *body, size_t len,
                                                     struct cairn_markers *out, size_t *dropped);

#endif

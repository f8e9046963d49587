/*
 * fuzz_chat_request.c — the JSON request model: strict JSON parsing
 * (include/json_strict.h) and the chat completion request built on it
 * (include/chat_request.h).
 *
 * Input: one byte choosing the nesting limit, then a request body. A body
 * that is accepted must print (the bytes cairn sends upstream) to a text
 * that is accepted again and prints the same, with the same model, message
 * count and stream flag: what was validated is what is forwarded. The
 * strict parser's own tree must print and re-parse to the same text too,
 * and reading a completion's text from any tree must not crash.
 */
#include <string.h>

#include "chat_request.h"
#include "fuzz.h"
#include "json_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    int depth = 8 + fuzz_byte(&in) % 64;
    char *body = malloc(in.n ? in.n : 1); /* exactly sized: over-reads are caught */
    if (body == NULL)
        abort();
    memcpy(body, in.p, in.n);
    char err[512];

    cJSON *tree = cairn_json_parse_strict(body, in.n, depth, err, sizeof(err));
    if (tree != NULL) {
        size_t l1, l2;
        char *t1 = cairn_json_print(tree, &l1);
        FUZZ_CHECK(t1 != NULL && strlen(t1) == l1);
        cJSON *again = cairn_json_parse_strict(t1, l1, depth, err, sizeof(err));
        FUZZ_CHECK(again != NULL);
        char *t2 = cairn_json_print(again, &l2);
        FUZZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
        (void)cairn_chat_completion_text(tree);
        free(t1);
        free(t2);
        cJSON_Delete(again);
        cJSON_Delete(tree);
    }

    struct cairn_chat_request req;
    if (cairn_chat_request_parse(&req, body, in.n, depth, err, sizeof(err)) == 0) {
        FUZZ_CHECK(req.model != NULL && cJSON_IsArray(req.messages) &&
                   cJSON_GetArraySize(req.messages) > 0);
        size_t l1, l2;
        char *p1 = cairn_chat_request_print(&req, &l1);
        struct cairn_chat_request again;
        int rc = cairn_chat_request_parse(&again, p1, l1, depth, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "printed request rejected: %s\n", err);
        FUZZ_CHECK(rc == 0);
        char *p2 = cairn_chat_request_print(&again, &l2);
        FUZZ_CHECK(l1 == l2 && memcmp(p1, p2, l1) == 0);
        FUZZ_CHECK(strcmp(req.model, again.model) == 0 && req.stream == again.stream);
        FUZZ_CHECK(cJSON_GetArraySize(req.messages) == cJSON_GetArraySize(again.messages));
        free(p1);
        free(p2);
        cairn_chat_request_free(&again);
        cairn_chat_request_free(&req);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    free(body);
    return 0;
}

/*
 * cairn-standin — a tiny stand-in for an OpenAI-compatible backend.
 *
 * It exists so that `make run` gives a newcomer something to curl through the
 * gateway without an API key, so that `make bench` has a fast, predictable
 * baseline to measure cairn's overhead against, and so that tests and
 * `make demo` can show what validation and retry do. It is a test tool, not
 * a model: every answer is built from canned text.
 *
 *   POST /v1/chat/completions  a chat.completion led by the prompt's
 *                              <MARKER_LIST> block when it has one (as a
 *                              marker-trained model answers), then an answer
 *                              shaped by those markers: length_tokens words,
 *                              JSON or a list for format, a canned sentence in
 *                              the lang, a fenced block of the code_type;
 *                              without such markers, an echo of the prompt.
 *                              With "stream": true an SSE stream of
 *                              chat.completion.chunk events ending in [DONE]
 *                              A request whose system message holds a
 *                              <MARKER_LIST> block (cairn's tagger prompt)
 *                              is answered as the annotator model would,
 *                              with a block of one marker, at once.
 *   GET  /v1/models            one model, "standin-1"
 *   anything else              404, OpenAI-shaped error
 *
 * Simulated disobedience: with --violate P, a first attempt breaks each of
 * its markers with probability P (twice the words, prose instead of JSON,
 * another language, another code language); with --violate-retry P, so does
 * an answer to a conversation that already holds an assistant turn (a
 * retry with feedback). --seed makes the draws repeatable, --delay-ms adds
 * a fixed latency to every answer.
 *
 * usage: cairn-standin [--listen HOST:PORT] [--violate P] [--violate-retry P]
 *                      [--seed N] [--delay-ms N]
 * (default 127.0.0.1:8081; port 0 picks a free port; the real address is
 * printed to stderr as "standin: listening on HOST:PORT"). No per-request
 * logging.
 */
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define SUMMARY_CHARS 80
#define REPLY_MAX     65536

static unsigned long next_id;

static struct {
    double violate;       /* probability a first attempt breaks a marker */
    double violate_retry; /* the same for a retry */
    unsigned seed;
    long delay_ms;
    struct event_base *base;
} sim;

/* A uniform draw in [0, 1), from the repeatable generator. */
static double draw(void)
{
    sim.seed = sim.seed * 1103515245u + 12345u;
    return (double)((sim.seed >> 8) & 0xFFFFFF) / (double)0x1000000;
}

/* The value of <tag>value</tag> inside the block, copied to out, or NULL. */
static const char *marker(const char *block, size_t blen, const char *tag, char *out, size_t outlen)
{
    char open[48];
    snprintf(open, sizeof open, "<%s>", tag);
    const char *v = block ? memmem(block, blen, open, strlen(open)) : NULL;
    if (v == NULL)
        return NULL;
    v += strlen(open);
    const char *end = memchr(v, '<', blen - (size_t)(v - block));
    if (end == NULL || (size_t)(end - v) >= outlen)
        return NULL;
    memcpy(out, v, (size_t)(end - v));
    out[end - v] = '\0';
    return out;
}

static const struct {
    const char *lang;
    const char *sentence;
} sentences[] = {
    {"English", "The answer follows from the question in a simple and direct way."},
    {"French", "La réponse découle de la question de manière simple et directe."},
    {"Spanish", "La respuesta se deduce de la pregunta de una manera sencilla y directa."},
    {"German", "Die Antwort ergibt sich auf einfache und direkte Weise aus der Frage."},
    {"Italian", "La risposta segue dalla domanda in modo semplice e diretto."},
    {"Portuguese", "A resposta decorre da pergunta de uma forma simples e direta."},
};

static const char *sentence_in(const char *lang)
{
    for (size_t i = 0; i < sizeof sentences / sizeof sentences[0]; i++)
        if (lang != NULL && strcmp(lang, sentences[i].lang) == 0)
            return sentences[i].sentence;
    return sentences[0].sentence;
}

/* Append at most `words` words of `sentence`, repeated, to out. */
static void add_words(char *out, size_t outlen, const char *sentence, long words)
{
    const char *p = sentence;
    for (long w = 0; w < words; w++) {
        size_t n = strcspn(p, " ");
        size_t len = strlen(out);
        if (len + n + 2 >= outlen)
            return;
        snprintf(out + len, outlen - len, "%s%.*s", len > 0 && out[len - 1] != '\n' ? " " : "",
                 (int)n, p);
        p += n;
        p += strspn(p, " ");
        if (*p == '\0')
            p = sentence;
    }
}

/* The answer a marker-trained model would give to the markers of `block`
 * (breaking each with the given probability), or 0 when the block has none
 * of the markers the stand-in knows. */
static int shaped_answer(const char *block, size_t blen, double p, char *out, size_t outlen)
{
    char lang[32], len[16], fmt[32], code[32];
    bool has_lang = marker(block, blen, "lang", lang, sizeof lang) != NULL;
    bool has_len = marker(block, blen, "length_tokens", len, sizeof len) != NULL;
    bool has_fmt = marker(block, blen, "format", fmt, sizeof fmt) != NULL;
    bool has_code = marker(block, blen, "code_type", code, sizeof code) != NULL;
    if (!has_lang && !has_len && !has_fmt && !has_code)
        return 0;
    const char *say = sentence_in(has_lang ? lang : "English");
    if (has_lang && draw() < p)
        say = sentence_in(strcmp(lang, "English") == 0 ? "French" : "English");
    long words = has_len ? atol(len) * 4 / 5 : 24;
    if (words < 1)
        words = 1;
    if (has_len && draw() < p)
        words = atol(len) * 2 + 5;
    char prose[REPLY_MAX / 2] = "";
    add_words(prose, sizeof prose, say, words);
    out[0] = '\0';
    if (has_fmt && strcmp(fmt, "JSON") == 0 && draw() >= p)
        snprintf(out, outlen, "{\"answer\": \"%s\"}", prose);
    else if (has_fmt && strcmp(fmt, "Enumeration") == 0 && draw() >= p)
        snprintf(out, outlen, "- %s\n- %s", prose, say);
    else
        snprintf(out, outlen, "%s", prose);
    if (has_code) {
        const char *fence = draw() < p ? (strcmp(code, "python") == 0 ? "go" : "python") : code;
        snprintf(out + strlen(out), outlen - strlen(out), "\n\n```%s\n%s\n```", fence, "print(42)");
    }
    return 1;
}

/* Whether the conversation already holds an answer: a retry. */
static bool has_assistant_turn(const cJSON *messages)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "assistant") == 0)
            return true;
    }
    return false;
}

static void send_json(struct evhttp_request *req, int code, const char *reason, cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (text) {
        evbuffer_add(out, text, strlen(text));
        cJSON_free(text);
    }
    evhttp_send_reply(req, code, reason, NULL);
    cJSON_Delete(obj);
}

static void send_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", "invalid_request_error");
    cJSON_AddNullToObject(err, "param");
    cJSON_AddNullToObject(err, "code");
    send_json(req, code, reason, root);
}

/* Text of the last user message (string content or first text part), or "". */
static const char *last_user_text(const cJSON *messages, size_t *prompt_bytes)
{
    const char *text = "";
    const cJSON *m;
    *prompt_bytes = 0;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *t = NULL;
        if (cJSON_IsString(content)) {
            t = content->valuestring;
        } else if (cJSON_IsArray(content)) {
            const cJSON *part;
            cJSON_ArrayForEach(part, content)
            {
                const cJSON *pt = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (cJSON_IsString(pt)) {
                    t = pt->valuestring;
                    break;
                }
            }
        }
        if (t)
            *prompt_bytes += strlen(t);
        if (t && cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
            text = t;
    }
    return text;
}

/* Byte length of the first n UTF-8 characters of s. */
static size_t utf8_prefix(const char *s, size_t n)
{
    size_t i = 0, chars = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == n)
            break;
        i++;
    }
    return i;
}

static cJSON *chunk_new(const char *id, double created, const char *model, cJSON **delta,
                        const char *finish)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(root, "created", created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
    cJSON_AddNumberToObject(choice, "index", 0);
    *delta = cJSON_AddObjectToObject(choice, "delta");
    cJSON_AddNullToObject(choice, "logprobs");
    if (finish)
        cJSON_AddStringToObject(choice, "finish_reason", finish);
    else
        cJSON_AddNullToObject(choice, "finish_reason");
    return root;
}

static void send_event(struct evhttp_request *req, cJSON *obj)
{
    struct evbuffer *buf = evbuffer_new();
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    evbuffer_add_printf(buf, "data: %s\n\n", obj ? (text ? text : "{}") : "[DONE]");
    evhttp_send_reply_chunk(req, buf);
    evbuffer_free(buf);
    cJSON_free(text);
    cJSON_Delete(obj);
}

static cJSON *usage_new(size_t prompt_bytes, size_t reply_bytes, size_t n_messages)
{
    cJSON *u = cJSON_CreateObject();
    double p = (double)((prompt_bytes + 3) / 4 + 3 * n_messages),
           c = (double)((reply_bytes + 3) / 4);
    cJSON_AddNumberToObject(u, "prompt_tokens", p);
    cJSON_AddNumberToObject(u, "completion_tokens", c);
    cJSON_AddNumberToObject(u, "total_tokens", p + c);
    return u;
}

static void chat_completions(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    cJSON *body = cJSON_ParseWithLength((const char *)evbuffer_pullup(in, -1), len);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        send_error(req, 400, "Bad Request",
                   "We could not parse the JSON body of your request. (HINT: This likely means "
                   "you aren't using your HTTP library correctly.)");
        return;
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(body);
        send_error(req, 400, "Bad Request", "'messages' is a required property");
        return;
    }
    const cJSON *jmodel = cJSON_GetObjectItemCaseSensitive(body, "model");
    const char *model = cJSON_IsString(jmodel) ? jmodel->valuestring : "standin-1";
    size_t prompt_bytes, n_messages = (size_t)cJSON_GetArraySize(messages);
    const char *said = last_user_text(messages, &prompt_bytes);
    const cJSON *first = cJSON_GetArrayItem(messages, 0);
    const cJSON *first_role = cJSON_GetObjectItemCaseSensitive(first, "role");
    const cJSON *first_text = cJSON_GetObjectItemCaseSensitive(first, "content");
    if (cJSON_IsString(first_role) && strcmp(first_role->valuestring, "system") == 0 &&
        cJSON_IsString(first_text) && strstr(first_text->valuestring, "<MARKER_LIST>") != NULL)
        said = "<MARKER_LIST>\n<task>QuestionAnswering</task>\n</MARKER_LIST>";
    /* Like a marker-trained model, answer with the prompt's marker block
     * first (so `make run` shows cairn removing it), then the echo of the
     * prose before the block. */
    const char *block = strstr(said, "<MARKER_LIST>");
    const char *block_end = block ? strstr(block, "</MARKER_LIST>") : NULL;
    size_t prose = block_end ? (size_t)(block - said) : strlen(said);
    while (prose > 0 && (said[prose - 1] == '\n' || said[prose - 1] == ' '))
        prose--;
    size_t echo = utf8_prefix(said, SUMMARY_CHARS);
    if (echo > prose)
        echo = prose;
    int blen = block_end && block_end - block < 1024
                   ? (int)(block_end - block + strlen("</MARKER_LIST>"))
                   : 0;
    static char reply[REPLY_MAX], shaped[REPLY_MAX / 2];
    char id[48];
    double p = has_assistant_turn(messages) ? sim.violate_retry : sim.violate;
    int rlen;
    if (shaped_answer(block, (size_t)blen, p, shaped, sizeof shaped))
        rlen = snprintf(reply, sizeof reply, "%.*s%s%s", blen, block ? block : "",
                        blen ? "\n\n" : "", shaped);
    else
        rlen = snprintf(reply, sizeof reply,
                        "%.*s%sHello from the cairn stand-in backend. You said: %.*s", blen,
                        block ? block : "", blen ? "\n\n" : "", (int)echo, said);
    if (rlen >= (int)sizeof reply)
        rlen = (int)sizeof reply - 1;
    double created = (double)time(NULL);
    snprintf(id, sizeof id, "chatcmpl-standin-%lu", ++next_id);

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"))) {
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        int want_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        cJSON *delta, *c;
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
        c = chunk_new(id, created, model, &delta, NULL);
        cJSON_AddStringToObject(delta, "role", "assistant");
        cJSON_AddStringToObject(delta, "content", "");
        send_event(req, c);
        /* content in 4 deltas, cut on UTF-8 character boundaries */
        for (int k = 0, start = 0; k < 4 && start < rlen; k++) {
            int end = k == 3 ? rlen : rlen * (k + 1) / 4;
            while (end < rlen && ((unsigned char)reply[end] & 0xC0) == 0x80)
                end++;
            static char piece[sizeof reply];
            memcpy(piece, reply + start, (size_t)(end - start));
            piece[end - start] = '\0';
            c = chunk_new(id, created, model, &delta, NULL);
            cJSON_AddStringToObject(delta, "content", piece);
            send_event(req, c);
            start = end;
        }
        send_event(req, chunk_new(id, created, model, &delta, "stop"));
        if (want_usage) {
            c = chunk_new(id, created, model, &delta, NULL);
            cJSON_DeleteItemFromObject(c, "choices");
            cJSON_AddArrayToObject(c, "choices");
            cJSON_AddItemToObject(c, "usage", usage_new(prompt_bytes, (size_t)rlen, n_messages));
            send_event(req, c);
        }
        send_event(req, NULL);
        evhttp_send_reply_end(req);
        cJSON_Delete(body);
        return;
    }

    cJSON *root = cJSON_CreateObject(), *choice = cJSON_CreateObject(), *msg;
    cJSON_AddStringToObject(root, "id", id);
    cJSON_AddStringToObject(root, "object", "chat.completion");
    cJSON_AddNumberToObject(root, "created", created);
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
    cJSON_AddNumberToObject(choice, "index", 0);
    msg = cJSON_AddObjectToObject(choice, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", reply);
    cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddStringToObject(choice, "finish_reason", "stop");
    cJSON_AddItemToObject(root, "usage", usage_new(prompt_bytes, (size_t)rlen, n_messages));
    cJSON_Delete(body);
    send_json(req, 200, "OK", root);
}

static void on_delayed(evutil_socket_t fd, short what, void *req)
{
    (void)fd;
    (void)what;
    chat_completions(req);
}

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path)
        path = "";
    if (cmd == EVHTTP_REQ_POST && strcmp(path, "/v1/chat/completions") == 0 && sim.delay_ms > 0) {
        struct timeval tv = {sim.delay_ms / 1000, (sim.delay_ms % 1000) * 1000};
        event_base_once(sim.base, -1, EV_TIMEOUT, on_delayed, req, &tv);
    } else if (cmd == EVHTTP_REQ_POST && strcmp(path, "/v1/chat/completions") == 0) {
        chat_completions(req);
    } else if (cmd == EVHTTP_REQ_GET && strcmp(path, "/v1/models") == 0) {
        cJSON *root = cJSON_CreateObject(), *m = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "object", "list");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "data"), m);
        cJSON_AddStringToObject(m, "id", "standin-1");
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "cairn");
        send_json(req, 200, "OK", root);
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "Invalid URL (%s %.200s)",
                 cmd == EVHTTP_REQ_GET    ? "GET"
                 : cmd == EVHTTP_REQ_POST ? "POST"
                                          : "other method",
                 path);
        send_error(req, 404, "Not Found", msg);
    }
}

static void on_signal(evutil_socket_t sig, short events, void *base)
{
    (void)sig;
    (void)events;
    event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8081";
    sim.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v != NULL && strcmp(a, "--listen") == 0)
            listen = v;
        else if (v != NULL && strcmp(a, "--violate") == 0)
            sim.violate = atof(v);
        else if (v != NULL && strcmp(a, "--violate-retry") == 0)
            sim.violate_retry = atof(v);
        else if (v != NULL && strcmp(a, "--seed") == 0)
            sim.seed = (unsigned)strtoul(v, NULL, 10);
        else if (v != NULL && strcmp(a, "--delay-ms") == 0)
            sim.delay_ms = atol(v);
        else {
            fprintf(stderr,
                    "usage: %s [--listen HOST:PORT] [--violate P] [--violate-retry P] "
                    "[--seed N] [--delay-ms N]\n",
                    argv[0]);
            return 2;
        }
        i++;
    }
    /* HOST:PORT or [V6ADDR]:PORT; HOST may be a name (evhttp resolves it) */
    char host[256];
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']')
        listen++, hl -= 2;
    if (hl == 0 || hl >= sizeof host || !colon[1]) {
        fprintf(stderr, "standin: bad --listen address, want HOST:PORT\n");
        return 2;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';

    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    sim.base = base;
    if (!http)
        return 1;
    evhttp_set_allowed_methods(http, 0x1FF); /* all methods reach handle(): 404, not 405 */
    evhttp_set_max_body_size(http, 16 << 20);
    evhttp_set_gencb(http, handle, NULL);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)atoi(colon + 1));
    struct sockaddr_storage ss;
    socklen_t alen = sizeof ss;
    char h[NI_MAXHOST], sv[NI_MAXSERV];
    if (!bs || getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &alen) != 0 ||
        getnameinfo((struct sockaddr *)&ss, alen, h, sizeof h, sv, sizeof sv,
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        fprintf(stderr, "standin: cannot listen on %s:%s\n", host, colon + 1);
        return 1;
    }
    fprintf(stderr,
            ss.ss_family == AF_INET6 ? "standin: listening on [%s]:%s\n"
                                     : "standin: listening on %s:%s\n",
            h, sv);

    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}

/*
 * log.c — access records, operational messages, content and experiment
 * records as JSON lines (see log.h).
 *
 * Each line is formatted here, on the caller's thread, and handed whole to
 * the writer thread (log_writer.c), which alone touches the descriptors:
 * formatting never waits, writing never stalls the event loop. Strings
 * that come from the network (the path) are escaped; nothing from a
 * request body or from a header value is ever logged in the access log.
 * The content log, a separate file that only tenants who ask for it write
 * to, holds prompts and answers, with keys masked before the line leaves
 * this file.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "keys.h"
#include "log_writer.h"
#include "server.h"

#define MIB ((size_t)1 << 20)

/* Bytes each log may hold queued before its new lines are dropped: far
 * more than a healthy disk ever lets pile up, little memory when a sick
 * one does. A content record holds a whole body and answer. */
static const size_t queue_bound[CAIRN_LOG_KINDS] = {
    [CAIRN_LOG_ACCESS] = 4 * MIB,
    [CAIRN_LOG_CONTENT] = 32 * MIB,
    [CAIRN_LOG_EXPERIMENT] = 4 * MIB,
    [CAIRN_LOG_MESSAGE] = 1 * MIB,
};

static const char *const kind_names[CAIRN_LOG_KINDS] = {
    [CAIRN_LOG_ACCESS] = "access",
    [CAIRN_LOG_CONTENT] = "content",
    [CAIRN_LOG_EXPERIMENT] = "experiment",
    [CAIRN_LOG_MESSAGE] = "message",
};

/* Started by the first cairn_log_open, in the process that serves;
 * NULL before it and after cairn_log_close. */
static struct cairn_log_writer *writer;
static bool access_on, content_on, experiment_on;

/* A log file cairn_log_open is opening. */
struct opening {
    const char *what, *path; /* path NULL: not a file (stderr, or off) */
    mode_t mode;
    int fd;
    bool created; /* by this call, so that a refused one can take it back */
};

/* Open o->path for appending into o->fd. @return 0 or -1 with err. */
static int open_log(struct opening *o, char *err, size_t errlen)
{
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
    o->fd = open(o->path, flags);
    if (o->fd < 0 && errno == ENOENT) {
        o->fd = open(o->path, flags | O_CREAT | O_EXCL, o->mode);
        o->created = o->fd >= 0;
    }
    if (o->fd >= 0)
        return 0;
    snprintf(err, errlen, "cannot open %s log %s: %s", o->what, o->path, strerror(errno));
    return -1;
}

/* Close the first n files opened, and remove those that were created:
 * nothing of a refused configuration stays behind. */
static void undo_open(struct opening *logs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (logs[i].path == NULL)
            continue;
        close(logs[i].fd);
        if (logs[i].created)
            unlink(logs[i].path);
    }
}

int cairn_log_open(const char *access_path, const char *content_path, const char *experiment_path,
                   char *err, size_t errlen)
{
    /* "-" is stderr, "off" nothing (nginx's access_log off) */
    bool access_off = access_path != NULL && strcmp(access_path, "off") == 0;
    if (access_path != NULL && (access_off || strcmp(access_path, "-") == 0))
        access_path = NULL;
    struct opening logs[] = {
        [CAIRN_LOG_ACCESS] = {"access", access_path, 0640, access_off ? -1 : STDERR_FILENO, false},
        [CAIRN_LOG_CONTENT] = {"content", content_path, 0600, -1, false},
        /* Experiment records carry prompts and answers where content is
         * logged: the file is then as private as the content log. */
        [CAIRN_LOG_EXPERIMENT] = {"experiment", experiment_path, content_path ? 0600 : 0640, -1,
                                  false},
    };
    size_t nlogs = sizeof(logs) / sizeof(logs[0]), n = 0;
    while (n < nlogs && (logs[n].path == NULL || open_log(&logs[n], err, errlen) == 0))
        n++;
    if (n == nlogs && writer == NULL) {
        writer = cairn_log_writer_new(queue_bound, err, errlen);
        if (writer != NULL)
            cairn_log_writer_set_fd(writer, CAIRN_LOG_MESSAGE, STDERR_FILENO);
    }
    if (n < nlogs || writer == NULL) {
        undo_open(logs, n);
        return -1;
    }
    /* All opened: only now do the old ones go, each once its queued lines
     * are written. */
    for (size_t i = 0; i < nlogs; i++)
        cairn_log_writer_set_fd(writer, (enum cairn_log_kind)i, logs[i].fd);
    access_on = logs[CAIRN_LOG_ACCESS].fd >= 0;
    content_on = logs[CAIRN_LOG_CONTENT].fd >= 0;
    experiment_on = logs[CAIRN_LOG_EXPERIMENT].fd >= 0;
    return 0;
}

void cairn_log_close(void)
{
    cairn_log_writer_free(writer);
    writer = NULL;
    access_on = content_on = experiment_on = false;
}

bool cairn_log_access_enabled(void)
{
    return access_on || writer == NULL; /* without a writer, records go to stderr */
}

bool cairn_log_content_enabled(void)
{
    return content_on;
}

bool cairn_log_experiment_enabled(void)
{
    return experiment_on;
}

void cairn_log_counters(struct cairn_log_counters *out)
{
    if (writer != NULL)
        cairn_log_writer_counters(writer, out);
    else
        memset(out, 0, sizeof(*out));
}

const char *cairn_log_kind_name(enum cairn_log_kind kind)
{
    return kind_names[kind];
}

/* Hand one line (without its newline) to the writer. With none running —
 * before the first cairn_log_open, after cairn_log_close, in commands that
 * do not serve — messages and access records go straight to stderr: no
 * event loop that serves waits for that write. */
static void emit(enum cairn_log_kind kind, const char *line, size_t len)
{
    if (writer != NULL)
        cairn_log_writer_push(writer, kind, line, len);
    else if (kind == CAIRN_LOG_ACCESS || kind == CAIRN_LOG_MESSAGE)
        fprintf(stderr, "%.*s\n", (int)len, line);
}

/* "2026-11-26T23:59:59.123Z" */
static void format_time(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Copy `s` into out[] as the inside of a JSON string. */
static void json_escape(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    for (; *s != '\0' && o + 7 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* Format one record and hand it over whole: on the stack when it fits, on
 * the heap when it does not (a record is never cut: a cut line would run
 * into the next one). */
static void emit_record(enum cairn_log_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void emit_record(enum cairn_log_kind kind, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line)) {
        emit(kind, line, (size_t)n);
        return;
    }
    char *big = cairn_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    emit(kind, big, (size_t)n);
    free(big);
}

void cairn_log_access(const struct cairn_request *req)
{
    if (!cairn_log_access_enabled())
        return; /* "off" */
    char when[32], path[sizeof(req->path) * 6 + 1];
    format_time(when, sizeof(when));
    json_escape(path, sizeof(path), req->path[0] != '\0' ? req->path : "-");
    uint64_t total_us = cairn_now_us() - req->start_us;
    char first_byte[32] = "null";
    if (req->upstream_first_byte_us != 0)
        snprintf(first_byte, sizeof(first_byte), "%.3f",
                 (double)req->upstream_first_byte_us / 1000.0);
    char error[80] = "null";
    if (req->error_code != NULL)
        snprintf(error, sizeof(error), "\"%s\"", req->error_code);
    char tenant[sizeof(req->tenant) + 2] = "null"; /* names are plain: see config.h */
    if (req->tenant[0] != '\0')
        snprintf(tenant, sizeof(tenant), "\"%s\"", req->tenant);

    emit_record(
        CAIRN_LOG_ACCESS,
        "{\"time\":\"%s\",\"type\":\"access\",\"request_id\":\"%s\","
        "\"method\":\"%s\",\"path\":\"%s\",\"tenant\":%s,\"status\":%d,\"upstream_status\":%d,"
        "\"stream\":%s,\"bytes_in\":%llu,\"bytes_out\":%llu,"
        "\"duration_ms\":%.3f,\"upstream_first_byte_ms\":%s,\"error\":%s%s%s}",
        when, req->id, req->head.method != NULL ? req->head.method : "-", path, tenant, req->status,
        req->upstream_status, req->stream ? "true" : "false", (unsigned long long)req->bytes_in,
        (unsigned long long)req->bytes_out, (double)total_us / 1000.0, first_byte, error,
        req->log_fields ? "," : "", req->log_fields ? req->log_fields : "");
}

void cairn_log_msg(const char *level, const char *fmt, ...)
{
    char when[32], msg[1024], escaped[1024 * 6 + 1];
    format_time(when, sizeof(when));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_escape(escaped, sizeof(escaped), msg);
    char line[sizeof(escaped) + 128];
    int n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", when,
                     level, escaped);
    if (n > 0)
        emit(CAIRN_LOG_MESSAGE, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

void cairn_log_mask(char *text, size_t len, const char *secret)
{
    /* cairn's own client keys by their prefix (the random part after it) */
    static const char prefix[] = CAIRN_KEY_PREFIX;
    for (char *p = text;
         (p = memmem(p, len - (size_t)(p - text), prefix, sizeof(prefix) - 1)) != NULL;) {
        p += sizeof(prefix) - 1;
        size_t k = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
        memset(p, '*', k);
    }
    size_t slen = secret != NULL ? strlen(secret) : 0;
    for (char *p = text; slen > 0 && (p = memmem(p, len - (size_t)(p - text), secret, slen));) {
        memset(p, '*', slen);
        p += slen;
    }
}

void cairn_log_content(const char *request_id, const char *tenant, const char *request,
                       const char *response, const char *secret)
{
    if (!content_on)
        return;
    char when[32];
    format_time(when, sizeof(when));
    size_t n = strlen(request) + (response ? strlen(response) : 4) + strlen(tenant) + 192;
    char *line = cairn_malloc(n);
    int len = snprintf(line, n,
                       "{\"time\":\"%s\",\"type\":\"content\",\"request_id\":\"%s\","
                       "\"tenant\":\"%s\",\"request\":%s,\"response\":%s}",
                       when, request_id, tenant, request, response ? response : "null");
    cairn_log_mask(line, (size_t)len, secret);
    emit(CAIRN_LOG_CONTENT, line, (size_t)len);
    free(line);
}

void cairn_log_experiment(const char *json, size_t len)
{
    if (experiment_on)
        emit(CAIRN_LOG_EXPERIMENT, json, len);
}

void cairn_log_experiment_record(const char *kind, const char *members)
{
    if (!experiment_on)
        return;
    char when[32];
    format_time(when, sizeof(when));
    emit_record(CAIRN_LOG_EXPERIMENT, "{\"kind\":\"%s\",\"time\":\"%s\",%s}", kind, when, members);
}

void cairn_log_experiment_request(const struct cairn_request *req)
{
    if (!experiment_on || req->experiment_fields == NULL)
        return;
    char when[32], first_byte[32] = "null";
    format_time(when, sizeof(when));
    if (req->first_byte_us != 0)
        snprintf(first_byte, sizeof(first_byte), "%.3f", (double)req->first_byte_us / 1000.0);
    emit_record(CAIRN_LOG_EXPERIMENT,
                "{\"kind\":\"request\",\"time\":\"%s\",\"request_id\":\"%s\",\"status\":%d,"
                "\"upstream_status\":%d,\"stream\":%s,\"latency_ms\":%.3f,\"first_byte_ms\":%s,%s}",
                when, req->id, req->status, req->upstream_status, req->stream ? "true" : "false",
                (double)(cairn_now_us() - req->start_us) / 1000.0, first_byte,
                req->experiment_fields);
}

/*
 * log.c — access records and operational messages as JSON lines
 * (see log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2)
 * on an O_APPEND descriptor, so lines from several processes never
 * interleave. Strings that come from the network (the path) are escaped;
 * nothing from a request body or from a header value is ever logged in
 * the access log. The content log, a separate file that only tenants who
 * ask for it write to, holds prompts and answers, with keys masked.
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
#include "server.h"

static int access_fd = STDERR_FILENO;
static int content_fd = -1; /* -1: no content log */

/* A log file opened for appending, or -1 with err; *created says whether
 * this call made the file (so that a reload that fails can take it back). */
static int open_log(const char *what, const char *path, mode_t mode, bool *created, char *err,
                    size_t errlen)
{
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
    int fd = open(path, flags);
    *created = false;
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, flags | O_CREAT | O_EXCL, mode);
        *created = fd >= 0;
    }
    if (fd < 0)
        snprintf(err, errlen, "cannot open %s log %s: %s", what, path, strerror(errno));
    return fd;
}

int cairn_log_open(const char *access_path, const char *content_path, char *err, size_t errlen)
{
    bool to_stderr = access_path == NULL || strcmp(access_path, "-") == 0, created = false;
    int afd =
        to_stderr ? STDERR_FILENO : open_log("access", access_path, 0640, &created, err, errlen);
    if (afd < 0)
        return -1;
    int cfd = -1;
    bool ccreated;
    if (content_path != NULL &&
        (cfd = open_log("content", content_path, 0600, &ccreated, err, errlen)) < 0) {
        if (afd != STDERR_FILENO)
            close(afd);
        if (created) /* nothing of a refused configuration stays behind */
            unlink(access_path);
        return -1;
    }
    /* Both opened: only now do the old ones go. */
    cairn_log_close();
    access_fd = afd;
    content_fd = cfd;
    return 0;
}

bool cairn_log_content_enabled(void)
{
    return content_fd >= 0;
}

void cairn_log_close(void)
{
    if (access_fd != STDERR_FILENO)
        close(access_fd);
    access_fd = STDERR_FILENO;
    if (content_fd >= 0)
        close(content_fd);
    content_fd = -1;
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

static void write_line(int fd, const char *line, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* a full disk must not stop the gateway; the line is lost */
        line += n;
        len -= (size_t)n;
    }
}

/* Format one record and write it whole: on the stack when it fits, on the
 * heap when it does not (a record is never cut: a cut line would run into
 * the next one). */
static void write_record(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_record(int fd, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line)) {
        write_line(fd, line, (size_t)n);
        return;
    }
    char *big = cairn_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    write_line(fd, big, (size_t)n);
    free(big);
}

void cairn_log_access(const struct cairn_request *req)
{
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

    write_record(
        access_fd,
        "{\"time\":\"%s\",\"type\":\"access\",\"request_id\":\"%s\","
        "\"method\":\"%s\",\"path\":\"%s\",\"tenant\":%s,\"status\":%d,\"upstream_status\":%d,"
        "\"stream\":%s,\"bytes_in\":%llu,\"bytes_out\":%llu,"
        "\"duration_ms\":%.3f,\"upstream_first_byte_ms\":%s,\"error\":%s%s%s}\n",
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
    int n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
                     when, level, escaped);
    if (n > 0)
        write_line(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Overwrite every occurrence of `secret` in text[0..len) with '*'. */
static void mask(char *text, size_t len, const char *secret, size_t slen)
{
    char *p = text;
    while (slen > 0 && (p = memmem(p, len - (size_t)(p - text), secret, slen)) != NULL) {
        memset(p, '*', slen);
        p += slen;
    }
}

void cairn_log_content(const char *request_id, const char *tenant, const char *request,
                       const char *response, const char *secret)
{
    char when[32];
    format_time(when, sizeof(when));
    size_t n = strlen(request) + (response ? strlen(response) : 4) + strlen(tenant) + 192;
    char *line = cairn_malloc(n);
    int len = snprintf(line, n,
                       "{\"time\":\"%s\",\"type\":\"content\",\"request_id\":\"%s\","
                       "\"tenant\":\"%s\",\"request\":%s,\"response\":%s}\n",
                       when, request_id, tenant, request, response ? response : "null");
    /* Keys that callers pasted into prompts: cairn's own client keys by
     * their prefix (the random part), and the upstream key itself. */
    static const char prefix[] = CAIRN_KEY_PREFIX;
    for (char *p = line;
         (p = memmem(p, (size_t)len - (size_t)(p - line), prefix, sizeof(prefix) - 1)) != NULL;) {
        p += sizeof(prefix) - 1;
        size_t k = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
        memset(p, '*', k);
    }
    if (secret != NULL)
        mask(line, (size_t)len, secret, strlen(secret));
    write_line(content_fd, line, (size_t)len);
    free(line);
}

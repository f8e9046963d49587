/*
 * log.h — the access log (one JSON object per request), operational
 * messages, and the content log. The first two never carry prompt text,
 * answers or keys: the access record is built from a fixed list of
 * fields, and messages are written by cairn's own code with values it
 * chose to print. The content log holds prompts and answers of the
 * tenants whose policy says log_content, in its own file (mode 0600).
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stdbool.h>
#include <stddef.h>

struct cairn_request;

/**
 * Open the access log ("-" or NULL = stderr, else a file opened for
 * appending) and the content log (NULL = none), replacing the current
 * ones only when both opened (a reload that fails changes nothing).
 * @return 0 or -1 with err.
 */
int cairn_log_open(const char *access_path, const char *content_path, char *err, size_t errlen);
void cairn_log_close(void);

bool cairn_log_content_enabled(void);

/**
 * One content record: `request` and `response` are compact JSON texts
 * (response NULL for a streamed answer, which is not collected). Client
 * keys ("sk-cairn-…") and `secret` (the upstream key, may be NULL) are
 * masked wherever they appear.
 */
void cairn_log_content(const char *request_id, const char *tenant, const char *request,
                       const char *response, const char *secret);

/** Write the request's access record (called once, when it ends). */
void cairn_log_access(const struct cairn_request *req);

/** An operational message to stderr as a JSON line with "level". */
void cairn_log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

/*
 * log.h — the access log (one JSON object per request), operational
 * messages, the content log and the experiment log. The first two never
 * carry prompt text, answers or keys: the access record is built from a
 * fixed list of fields, and messages are written by cairn's own code with
 * values it chose to print. The content log holds prompts and answers of
 * the tenants whose policy says log_content, in its own file (mode 0600);
 * the experiment log holds one record per request of an experiment.
 *
 * Once cairn_log_open has run, nothing here writes on the caller's thread:
 * every line is queued to the writer thread (log_writer.h), which owns the
 * descriptors. A line is dropped, and counted, rather than ever making the
 * event loop wait for a slow or full disk.
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cairn_request;

/* The logs, each with its own queue bound and counters. */
enum cairn_log_kind {
    CAIRN_LOG_ACCESS,
    CAIRN_LOG_CONTENT,
    CAIRN_LOG_EXPERIMENT,
    CAIRN_LOG_MESSAGE, /* operational messages, always to stderr */
    CAIRN_LOG_KINDS
};

/* What each log lost since the first cairn_log_open. */
struct cairn_log_counters {
    uint64_t dropped[CAIRN_LOG_KINDS];      /* lines refused: their queue was full */
    uint64_t write_errors[CAIRN_LOG_KINDS]; /* failed writes; their lines are lost */
};

/**
 * Open the access log ("-" or NULL = stderr, else a file opened for
 * appending, mode 0640), the content log (NULL = none, mode 0600) and the
 * experiment log (NULL = none, mode 0640), replacing the current ones only
 * when all opened: a reload that fails changes nothing, and files this call
 * created are removed again. Lines queued before the call still go to the
 * files they were queued for; later ones go to the new files.
 *
 * The first call starts the writer thread. Threads do not survive fork(2):
 * a process that forks stops its writer first (cairn_log_close) and opens
 * the logs again after; the child opens its own.
 * @return 0 or -1 with err.
 */
int cairn_log_open(const char *access_path, const char *content_path, const char *experiment_path,
                   char *err, size_t errlen);

/** Write out everything queued, stop the writer thread and close the logs
 * (at exit). Until the next cairn_log_open, messages and access records go
 * straight to stderr and the other logs are off. */
void cairn_log_close(void);

/** Whether access records are written (anything a record alone carries
 *  need not be worked out otherwise). */
bool cairn_log_access_enabled(void);
bool cairn_log_content_enabled(void);
bool cairn_log_experiment_enabled(void);

/** The counters of every log (zeros while no writer runs). */
void cairn_log_counters(struct cairn_log_counters *out);

/** "access", "content", "experiment", "message": a metric's label. */
const char *cairn_log_kind_name(enum cairn_log_kind kind);

/**
 * One content record: `request` and `response` are compact JSON texts
 * (response NULL for a streamed answer, which is not collected). Client
 * keys ("sk-cairn-…") and `secret` (the upstream key, may be NULL) are
 * masked wherever they appear, before the line leaves this call.
 */
void cairn_log_content(const char *request_id, const char *tenant, const char *request,
                       const char *response, const char *secret);

/** One experiment record {"kind":kind,"time":…,members}: `members` are
 *  JSON members without braces ("a":1,"b":2). */
void cairn_log_experiment_record(const char *kind, const char *members);

/** One experiment line the caller has built whole: `json`, an object
 *  without a newline, `len` bytes. */
void cairn_log_experiment(const char *json, size_t len);

/** The experiment record of a request that ran in an experiment arm
 *  (req->experiment_fields set): its id, status, latencies and fields. */
void cairn_log_experiment_request(const struct cairn_request *req);

/** Overwrite with '*' cairn's client keys ("sk-cairn-…") and `secret`
 *  (the upstream key, may be NULL) wherever they appear in text[0..len):
 *  for logs that hold prompts and answers. */
void cairn_log_mask(char *text, size_t len, const char *secret);

/** Write the request's access record (called once, when it ends). */
void cairn_log_access(const struct cairn_request *req);

/** An operational message to stderr as a JSON line with "level". */
void cairn_log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

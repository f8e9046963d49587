/*
 * log.h — the access log (one JSON object per request) and operational
 * messages. Neither ever carries prompt text, answers or keys: the access
 * record is built from a fixed list of fields, and messages are written by
 * cairn's own code with values it chose to print.
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stddef.h>

struct cairn_request;

/** Open the access log: "-" = stderr, else a file opened for appending.
 *  @return 0 or -1 with err. */
int cairn_log_open(const char *access_path, char *err, size_t errlen);
void cairn_log_close(void);

/** Write the request's access record (called once, when it ends). */
void cairn_log_access(const struct cairn_request *req);

/** An operational message to stderr as a JSON line with "level". */
void cairn_log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

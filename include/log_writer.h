/*
 * log_writer.h — the thread that writes the logs (see log.h), so that the
 * event loop never waits for a disk.
 *
 * The loop hands over complete lines; each is copied into a bounded
 * in-memory queue and written later, whole, by one background thread that
 * owns the log descriptors. A log whose queue is full drops new lines and
 * counts them; a failing write is counted and its lines are given up.
 * Nothing on the caller's side ever waits for I/O or for room.
 */
#ifndef CAIRN_LOG_WRITER_H
#define CAIRN_LOG_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

struct cairn_log_writer;

/**
 * Start a writer thread with every log off.
 * @param bound bytes each log may hold queued (lines and their newlines,
 *        those being written included) before its new lines are dropped.
 *        A line longer than its log's bound is still taken when nothing of
 *        that log is queued, so no record is refused for its size alone.
 * @return the writer, or NULL with err when the thread cannot start.
 */
struct cairn_log_writer *cairn_log_writer_new(const size_t bound[CAIRN_LOG_KINDS], char *err,
                                              size_t errlen);

/**
 * Lines of `kind` queued from now on go to `fd` (-1: the log is off and
 * takes no lines); the writer owns `fd` from now on. The descriptor the log
 * had before is closed by the thread once the lines queued for it are
 * written. Standard streams are borrowed, never closed.
 */
void cairn_log_writer_set_fd(struct cairn_log_writer *w, enum cairn_log_kind kind, int fd);

/**
 * Queue a copy of line[0..len), which must hold no newline, as one line.
 * @return true if queued; false if the log is off, or if its queue is full
 *         (the line is then counted as dropped).
 */
bool cairn_log_writer_push(struct cairn_log_writer *w, enum cairn_log_kind kind, const char *line,
                           size_t len);

/** What every log lost so far. */
void cairn_log_writer_counters(struct cairn_log_writer *w, struct cairn_log_counters *out);

/** Write out everything queued, stop the thread, close the descriptors
 * it owns and free `w` (NULL: nothing). Waits for the disk: call it at
 * exit, not while serving. */
void cairn_log_writer_free(struct cairn_log_writer *w);

#endif

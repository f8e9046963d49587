/*
 * log_writer.c — one background thread writes every log (see log_writer.h).
 *
 * The queue is a single list in the order lines were handed over, whatever
 * their log, so that messages and access records sharing stderr keep their
 * order. Each entry carries the descriptor its log had when it was queued:
 * a reopen (logrotate's mv, then SIGHUP) sends later lines to the new file
 * while earlier ones still reach the old one, whose close is itself an
 * entry queued behind them. The lock guards the list, the byte counts and
 * the counters only; the thread takes the whole list at once and writes
 * with the lock released, so a producer waits at most for a list splice.
 *
 * Lines are written whole, several per writev(2); descriptors are O_APPEND,
 * so lines from several processes never interleave. A write that fails for
 * any reason other than EINTR is counted and its lines are given up: the
 * thread never retries a failing disk, so it cannot spin on one. The first
 * failure of a log is reported once on the message log (stderr), not once
 * per lost line; a write that succeeds again re-arms the report.
 */
#include "log_writer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

#define BATCH_LINES 64      /* lines gathered into one writev(2) */
#define GATHER_NS   1000000 /* a batch gathers for 1 ms */

struct entry {
    struct entry *next;
    int fd;
    enum cairn_log_kind kind;
    bool close_fd; /* no line: close fd, the lines queued before for it being written */
    size_t len;    /* of line[], its newline included */
    char line[];
};

struct cairn_log_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the list became non-empty, or stopping was set */

    /* Under lock. */
    struct entry *head, **tail;
    bool stopping;
    int fd[CAIRN_LOG_KINDS];         /* where lines queued now go; -1: off */
    size_t queued[CAIRN_LOG_KINDS];  /* bytes queued or being written */
    size_t bound[CAIRN_LOG_KINDS];   /* queued[] past which lines are dropped */
    struct cairn_log_counters count; /* what was lost */
    bool failing[CAIRN_LOG_KINDS];   /* its last write failed (and was reported) */
};

/* Append e; wakes the thread when the list was empty (otherwise it is
 * awake already, or will find the list non-empty before it sleeps).
 * Called with the lock held. */
static void append(struct cairn_log_writer *w, struct entry *e)
{
    bool was_empty = w->head == NULL;
    e->next = NULL;
    *w->tail = e;
    w->tail = &e->next;
    if (was_empty)
        pthread_cond_signal(&w->wake);
}

/* Write iov[0..n) whole to fd, resuming after EINTR and short writes.
 * @return 0, or the errno of any other failure (a write that makes no
 * progress counts as one, EIO, rather than being tried forever). */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t done = writev(fd, iov, n);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return done < 0 ? errno : EIO;
        for (; n > 0 && (size_t)done >= iov->iov_len; iov++, n--)
            done -= (ssize_t)iov->iov_len;
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= (size_t)done;
        }
    }
    return 0;
}

/* A log's writes started failing: say so once on the message log (unless
 * that is the log failing), as a message line of log.h's shape. Called on
 * the thread with the lock held; the line is written in the next round. */
static void report_failure(struct cairn_log_writer *w, enum cairn_log_kind kind, int err)
{
    int fd = w->fd[CAIRN_LOG_MESSAGE];
    if (kind == CAIRN_LOG_MESSAGE || fd < 0)
        return;
    char when[32], why[128], line[512];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    int len = snprintf(line, sizeof(line),
                       "{\"time\":\"%s\",\"level\":\"error\",\"msg\":\"cannot write the %s "
                       "log: %s; its lines are lost until a write succeeds (counted in "
                       "cairn_log_write_errors_total)\"}",
                       when, cairn_log_kind_name(kind), strerror_r(err, why, sizeof(why)));
    if (len <= 0 || (size_t)len >= sizeof(line))
        return;
    struct entry *e = cairn_malloc(sizeof(*e) + (size_t)len + 1);
    memcpy(e->line, line, (size_t)len);
    e->line[len] = '\n';
    e->len = (size_t)len + 1;
    e->fd = fd;
    e->kind = CAIRN_LOG_MESSAGE;
    e->close_fd = false;
    w->queued[CAIRN_LOG_MESSAGE] += e->len;
    append(w, e);
}

/* Write the entries from e on, then free them. Runs on the thread without
 * the lock; takes it once per writev to give back the bytes written. */
static void write_entries(struct cairn_log_writer *w, struct entry *e)
{
    while (e != NULL) {
        struct entry *first = e, *next;
        if (first->close_fd) {
            close(first->fd);
            e = first->next;
            free(first);
            continue;
        }
        /* A run of lines of one log, all queued for the same descriptor. */
        struct iovec iov[BATCH_LINES];
        int n = 0;
        size_t bytes = 0;
        for (; e != NULL && n < BATCH_LINES && !e->close_fd && e->fd == first->fd &&
               e->kind == first->kind;
             e = e->next, n++) {
            iov[n].iov_base = e->line;
            iov[n].iov_len = e->len;
            bytes += e->len;
        }
        enum cairn_log_kind kind = first->kind;
        int err = write_all(first->fd, iov, n);
        for (; first != e; first = next) {
            next = first->next;
            free(first);
        }
        pthread_mutex_lock(&w->lock);
        w->queued[kind] -= bytes;
        if (err != 0) {
            w->count.write_errors[kind]++;
            if (!w->failing[kind])
                report_failure(w, kind, err);
        }
        w->failing[kind] = err != 0;
        pthread_mutex_unlock(&w->lock);
    }
}

/* The thread: take the whole list, write it, until stopped with nothing
 * left — so that a stop writes out everything queued before it.
 *
 * Woken by the first line of a batch, it lets the batch gather for
 * GATHER_NS before taking it: the event loop signals only when the queue
 * was empty, so under load a whole millisecond of lines costs one wake-up
 * and one write, not a wake-up (two futex calls) and a write per request. */
static void *run(void *arg)
{
    struct cairn_log_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->head == NULL)
            break;
        if (!w->stopping) {
            pthread_mutex_unlock(&w->lock);
            nanosleep(&(struct timespec){0, GATHER_NS}, NULL);
            pthread_mutex_lock(&w->lock);
        }
        struct entry *batch = w->head;
        w->head = NULL;
        w->tail = &w->head;
        pthread_mutex_unlock(&w->lock);
        write_entries(w, batch);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct cairn_log_writer *cairn_log_writer_new(const size_t bound[CAIRN_LOG_KINDS], char *err,
                                              size_t errlen)
{
    struct cairn_log_writer *w = cairn_calloc(1, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->tail = &w->head;
    for (size_t k = 0; k < CAIRN_LOG_KINDS; k++) {
        w->fd[k] = -1;
        w->bound[k] = bound[k];
    }
    /* Signals are the event loop's business: the thread starts with all of
     * them blocked, so no handler ever runs on it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, run, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the log writer thread: %s", strerror(rc));
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void cairn_log_writer_set_fd(struct cairn_log_writer *w, enum cairn_log_kind kind, int fd)
{
    pthread_mutex_lock(&w->lock);
    int old = w->fd[kind];
    w->fd[kind] = fd;
    if (old > STDERR_FILENO && old != fd) {
        struct entry *e = cairn_calloc(1, sizeof(*e));
        e->fd = old;
        e->kind = kind;
        e->close_fd = true;
        append(w, e);
    }
    pthread_mutex_unlock(&w->lock);
}

bool cairn_log_writer_push(struct cairn_log_writer *w, enum cairn_log_kind kind, const char *line,
                           size_t len)
{
    /* Copied before taking the lock, which the thread then never waits
     * for longer than a list append. */
    struct entry *e = cairn_malloc(sizeof(*e) + len + 1);
    memcpy(e->line, line, len);
    e->line[len] = '\n';
    e->len = len + 1;
    e->kind = kind;
    e->close_fd = false;

    pthread_mutex_lock(&w->lock);
    e->fd = w->fd[kind];
    bool full = w->queued[kind] > 0 && w->queued[kind] + e->len > w->bound[kind];
    bool take = e->fd >= 0 && !full;
    if (take) {
        w->queued[kind] += e->len;
        append(w, e);
    } else if (e->fd >= 0) {
        w->count.dropped[kind]++;
    }
    pthread_mutex_unlock(&w->lock);
    if (!take)
        free(e);
    return take;
}

void cairn_log_writer_counters(struct cairn_log_writer *w, struct cairn_log_counters *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->count;
    pthread_mutex_unlock(&w->lock);
}

void cairn_log_writer_free(struct cairn_log_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* The thread is gone: what it owned is ours to close. */
    for (size_t k = 0; k < CAIRN_LOG_KINDS; k++)
        if (w->fd[k] > STDERR_FILENO)
            close(w->fd[k]);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/*
 * master.c — the master process (see master.h).
 *
 * A worker is forked from a master that already runs an event loop and
 * admin connections. The child keeps nothing of that: it resets the
 * signals the master catches, closes every descriptor but its own
 * listening sockets and the standard streams (an admin connection held
 * open by a worker would never see its close), and starts from a clean
 * slate: its own event loop, log writer and upstream client. The master's
 * log writer thread is stopped for the fork (a thread does not survive
 * one, and what it held would be held forever in the child) and started
 * again after. The signals the master passes on are blocked from before
 * the fork until the worker can handle them, so that a SIGHUP or SIGTERM
 * sent to a worker still starting is handled, not fatal.
 */
#include "master.h"

#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "alloc.h"
#include "listen.h"
#include "log.h"
#include "pattern.h"
#include "ratelimit.h"
#include "server.h"
#include "shm.h"
#include "snapshot.h"
#include "stats.h"

#define RESTART_MIN_MS 100   /* first delay for a worker that died young */
#define RESTART_MAX_MS 30000 /* the longest delay between two starts */
#define YOUNG_US       1000000u
#define RELOAD_WAIT_MS 10000 /* for the workers to confirm a reload */
#define RELOAD_TICK_MS 10

struct worker {
    struct cairn_master *m;
    unsigned index;
    pid_t pid;            /* 0 when not running */
    uint64_t started_us;  /* to tell a crash loop from a crash */
    unsigned young_exits; /* in a row: each doubles the restart delay */
    struct event *restart;
};

struct cairn_master {
    cairn_config_loader load;
    void *load_arg;
    struct event_base *base;
    struct cairn_config *cfg; /* owned: the configuration last checked */
    unsigned nworkers;
    struct worker workers[CAIRN_MAX_WORKERS];
    size_t nlisten;                      /* public addresses */
    int *fds;                            /* nworkers * nlisten public sockets */
    int admin_fds[CAIRN_MAX_LISTEN];     /* handed to the admin server */
    int claims[CAIRN_MAX_LISTEN];        /* the public addresses, held (listen.h) */
    struct cairn_server *admin;          /* NULL when the config has no admin listener */
    struct cairn_shared *shared;         /* the workers' arenas and limiter zone */
    struct cairn_limiter_zone *limiters; /* in `shared` */
    unsigned long config_version;        /* of the text in shared memory (shm.h) */
    uint16_t ports[CAIRN_MAX_LISTEN];    /* the public ports, to open a worker's sockets again */
    struct cairn_master_stats stats;
    bool stopping;
    int exit_code;
    struct event *signals[4];
};

static void config_free(struct cairn_config *cfg)
{
    if (cfg != NULL)
        cairn_config_free(cfg);
    free(cfg);
}

/* Hand `cfg`'s text to the workers (shm.h): what they load next. */
static void publish_config(struct cairn_master *m, const struct cairn_config *cfg)
{
    cairn_shared_set_config(m->shared, cfg->text, cfg->text_len);
    m->config_version++;
}

/* Read the file and check all of it, as a worker will load it (rules,
 * templates, keys...); the master keeps only the configuration, not what
 * was built to check it. @return the configuration, or NULL with err. */
static struct cairn_config *check_config(struct cairn_master *m, char *err, size_t errlen)
{
    struct cairn_config checked, *cfg = cairn_calloc(1, sizeof(*cfg));
    if (m->load(m->load_arg, NULL, 0, &checked, err, errlen) < 0) {
        free(cfg);
        return NULL;
    }
    if (m->load(m->load_arg, checked.text, checked.text_len, cfg, err, errlen) < 0) {
        cairn_config_free(&checked);
        free(cfg);
        return NULL;
    }
    struct cairn_snapshot *snap = cairn_snapshot_new(&checked, NULL, NULL, 0, err, errlen);
    if (snap == NULL) {
        config_free(cfg);
        return NULL;
    }
    cairn_snapshot_unref(snap);
    /* The rules built for the check are gone; give their pages back, or
     * the master would hold a worker's worth of heap for nothing. */
    cairn_pattern_release_unused();
    malloc_trim(0);
    return cfg;
}

/* --- a worker's start ------------------------------------------------------ */

static bool kept(int fd, const int *keep, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* Close every descriptor above the standard streams but keep[0..n): the
 * directory is read whole before anything is closed, a batch at a time. */
static void close_all_but(const int *keep, size_t n)
{
    enum { BATCH = 4096 };
    int fds[BATCH];
    size_t nfds;
    do {
        DIR *d = opendir("/proc/self/fd");
        if (d == NULL) {
            perror("cairn: worker: /proc/self/fd");
            _exit(1);
        }
        int dfd = dirfd(d);
        nfds = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL && nfds < BATCH;) {
            int fd = atoi(e->d_name);
            if (fd > STDERR_FILENO && fd != dfd && !kept(fd, keep, n))
                fds[nfds++] = fd;
        }
        closedir(d);
        for (size_t i = 0; i < nfds; i++)
            close(fds[i]);
    } while (nfds == BATCH);
}

/* In the child: become worker w. Never returns. */
static void run_worker(struct cairn_master *m, unsigned w, pid_t master)
{
    static const int caught[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
        signal(caught[i], SIG_DFL);
    /* A worker outlives no master: it drains and exits with it. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
        _exit(0);
    /* libevent's signal handling is process-wide: the master's loop must
     * be gone (its handlers restored) before the worker's own begins. */
    event_reinit(m->base);
    event_base_free(m->base);
    int *own = m->fds + (size_t)w * m->nlisten;
    close_all_but(own, m->nlisten);
    struct cairn_worker_spec spec = {
        .index = w,
        .fds = own,
        .nfds = m->nlisten,
        .ports = m->ports,
        .shared = m->shared,
        .arena = cairn_shared_arena(m->shared, w),
        .limiters = m->limiters,
    };
    exit(cairn_gateway_run(m->load, m->load_arg, &spec));
}

static int start_worker(struct cairn_master *m, unsigned w)
{
    struct worker *wk = &m->workers[w];
    const struct cairn_config *c = m->cfg;
    sigset_t passed, old;
    cairn_worker_signals(&passed);
    sigprocmask(SIG_BLOCK, &passed, &old);
    cairn_log_close();
    pid_t master = getpid(), pid = fork();
    if (pid == 0)
        run_worker(m, w, master);
    int fork_errno = errno;
    char err[512];
    if (cairn_log_open(c->log.access, c->log.content, c->log.experiment, err, sizeof(err)) < 0)
        fprintf(stderr, "cairn: %s; logging to stderr\n", err);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        cairn_log_msg("error", "cannot start worker %u: %s", w, strerror(fork_errno));
        return -1;
    }
    wk->pid = pid;
    wk->started_us = cairn_now_us();
    m->stats.workers++;
    return 0;
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *wk = arg;
    if (wk->m->stopping)
        return;
    if (start_worker(wk->m, wk->index) == 0) {
        wk->m->stats.restarts++;
        cairn_log_msg("info", "worker %u started again (pid %d)", wk->index, (int)wk->pid);
    } else {
        struct timeval tv = {RESTART_MAX_MS / 1000, 0};
        event_add(wk->restart, &tv);
    }
}

/* --- signals ------------------------------------------------------------------ */

static bool all_exited(const struct cairn_master *m)
{
    for (unsigned i = 0; i < m->nworkers; i++)
        if (m->workers[i].pid != 0)
            return false;
    return true;
}

static void signal_workers(struct cairn_master *m, int sig)
{
    for (unsigned i = 0; i < m->nworkers; i++)
        if (m->workers[i].pid != 0)
            kill(m->workers[i].pid, sig);
}

/* A worker has exited: when stopping, one fewer to wait for; otherwise it
 * died, and starts again. */
static void worker_exited(struct cairn_master *m, struct worker *wk, int status)
{
    pid_t pid = wk->pid;
    wk->pid = 0;
    m->stats.workers--;
    cairn_limiter_zone_forget(m->limiters, wk->index, (int)pid);
    struct cairn_stats *st = cairn_arena_root(cairn_shared_arena(m->shared, wk->index));
    if (st != NULL)
        cairn_stats_forget_gauges(st);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (m->stopping) {
        if (!clean)
            m->exit_code = 1;
        return;
    }
    if (WIFSIGNALED(status))
        cairn_log_msg("error", "worker %u (pid %d) died of signal %d", wk->index, (int)pid,
                      WTERMSIG(status));
    else
        cairn_log_msg("error", "worker %u (pid %d) exited with status %d", wk->index, (int)pid,
                      WEXITSTATUS(status));
    bool young = cairn_now_us() - wk->started_us < YOUNG_US;
    wk->young_exits = young ? wk->young_exits + 1 : 0;
    uint64_t ms = 0;
    if (wk->young_exits > 0) {
        ms = RESTART_MIN_MS;
        for (unsigned i = 1; i < wk->young_exits && ms < RESTART_MAX_MS; i++)
            ms *= 2;
        ms = ms < RESTART_MAX_MS ? ms : RESTART_MAX_MS;
        /* While it is down its sockets would only queue connections that
         * nobody accepts: close them, so that new connections go to the
         * workers that serve. A successor opens its own once it has loaded
         * its configuration (gateway.c), so that one that dies at start
         * never holds a socket. */
        cairn_listen_close(m->fds + (size_t)wk->index * m->nlisten, m->nlisten);
        cairn_log_msg("warn", "worker %u keeps dying at start: next start in %llu ms", wk->index,
                      (unsigned long long)ms);
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    event_add(wk->restart, &tv);
}

static void on_child(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct cairn_master *m = arg;
    int status;
    for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;)
        for (unsigned i = 0; i < m->nworkers; i++)
            if (m->workers[i].pid == pid)
                worker_exited(m, &m->workers[i], status);
    if (m->stopping && all_exited(m))
        event_base_loopexit(m->base, NULL);
}

/* Stop: no new connections reach the workers once they close their
 * sockets (the master's copies go now), and each drains what it has. */
static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct cairn_master *m = arg;
    if (!m->stopping)
        cairn_log_msg("info", "signal %d: stopping the workers", (int)sig);
    m->stopping = true;
    cairn_listen_close(m->fds, (size_t)m->nworkers * m->nlisten);
    for (unsigned i = 0; i < m->nworkers; i++)
        event_del(m->workers[i].restart);
    signal_workers(m, SIGTERM);
    if (all_exited(m))
        event_base_loopexit(m->base, NULL);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    char err[512];
    cairn_master_reload(arg, err, sizeof(err)); /* logs what it did */
}

/* --- the admin side --------------------------------------------------------- */

int cairn_master_reload(struct cairn_master *m, char *err, size_t errlen)
{
    struct cairn_config *cfg = check_config(m, err, errlen);
    if (cfg == NULL ||
        cairn_log_open(cfg->log.access, cfg->log.content, cfg->log.experiment, err, errlen) < 0) {
        config_free(cfg);
        m->stats.reloads_failed++;
        m->stats.last_reload_ok = false;
        cairn_log_msg("error", "reload rejected, the previous configuration stays: %s", err);
        return -1;
    }
    if (cfg->workers != m->cfg->workers || cfg->listen.n != m->nlisten)
        cairn_log_msg("warn", "reload: workers or listening addresses changed; they apply "
                              "after a restart");
    if (m->admin != NULL)
        cairn_server_set_config(m->admin, cfg);
    config_free(m->cfg);
    m->cfg = cfg;
    m->stats.generation++;
    m->stats.reloads_ok++;
    m->stats.last_reload_ok = true;
    publish_config(m, cfg);
    signal_workers(m, SIGHUP);
    cairn_log_msg("info", "configuration reloaded (generation %llu)",
                  (unsigned long long)m->stats.generation);
    return 0;
}

/* Running workers that have not loaded configuration `version` yet; *failed
 * is one that tried and could not, or -1. */
static unsigned workers_behind(struct cairn_master *m, unsigned long version, int *failed)
{
    unsigned behind = 0;
    *failed = -1;
    for (unsigned i = 0; i < m->nworkers; i++) {
        if (m->workers[i].pid == 0)
            continue; /* one started later loads the newest */
        struct cairn_stats *st = cairn_arena_root(cairn_shared_arena(m->shared, i));
        unsigned long loaded = 0, bad = 0;
        if (st != NULL)
            cairn_stats_config_state(st, &loaded, &bad);
        if (loaded >= version)
            continue;
        if (bad >= version)
            *failed = (int)i;
        behind++;
    }
    return behind;
}

/* A POST /admin/reload answered once every worker has applied the new
 * configuration (or one could not, or RELOAD_WAIT_MS passed): a 200 means
 * that the next request, whichever worker takes it, runs on it. */
struct reload_wait {
    struct cairn_master *m;
    struct cairn_request *req;
    unsigned long version;
    uint64_t generation, deadline_us;
    struct event *tick;
};

static void reload_wait_free(struct reload_wait *w)
{
    w->req->cancel = NULL;
    w->req->handler_ctx = NULL;
    event_free(w->tick);
    free(w);
}

static void on_reload_client_gone(void *ctx)
{
    struct reload_wait *w = ctx;
    event_free(w->tick);
    free(w);
}

static void on_reload_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct reload_wait *w = arg;
    int failed;
    unsigned behind = workers_behind(w->m, w->version, &failed);
    if (failed >= 0) {
        cairn_response_error(w->req, 500, "reload_failed",
                             "worker %d could not load the new configuration and keeps the "
                             "previous one (its log says why)",
                             failed);
    } else if (behind == 0) {
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"status\":\"reloaded\",\"generation\":%llu}\n",
                         (unsigned long long)w->generation);
        cairn_response_send(w->req, 200, "application/json", body, (size_t)n);
    } else if (cairn_now_us() >= w->deadline_us) {
        cairn_response_error(w->req, 500, "reload_incomplete",
                             "%u worker(s) did not load the new configuration within %d ms", behind,
                             RELOAD_WAIT_MS);
    } else {
        event_add(w->tick, &(struct timeval){0, RELOAD_TICK_MS * 1000});
        return;
    }
    reload_wait_free(w);
}

void cairn_master_reload_request(struct cairn_master *m, struct cairn_request *req)
{
    char err[512];
    if (cairn_master_reload(m, err, sizeof(err)) < 0) {
        cairn_response_error(req, 500, "reload_failed", "%s", err);
        return;
    }
    struct reload_wait *w = cairn_calloc(1, sizeof(*w));
    w->m = m;
    w->req = req;
    w->version = m->config_version;
    w->generation = m->stats.generation;
    w->deadline_us = cairn_now_us() + RELOAD_WAIT_MS * 1000u;
    w->tick = evtimer_new(m->base, on_reload_tick, w);
    req->cancel = on_reload_client_gone;
    req->handler_ctx = w;
    on_reload_tick(-1, 0, w);
}

char *cairn_master_metrics(struct cairn_master *m, size_t *len)
{
    struct cairn_stats *workers[CAIRN_MAX_WORKERS];
    size_t n = 0;
    for (unsigned i = 0; i < m->nworkers; i++) {
        /* A worker's stats exist once it has set them up. */
        struct cairn_stats *st = cairn_arena_root(cairn_shared_arena(m->shared, i));
        if (st != NULL)
            workers[n++] = st;
    }
    int failed;
    m->stats.stale = workers_behind(m, m->config_version, &failed);
    return cairn_stats_render(workers, n, &m->stats, len);
}

/* --- running ---------------------------------------------------------------- */

/* "workers": 0 is one per CPU this process may run on (its affinity, as
 * a container's cpuset sets it), not every CPU of the machine. */
static unsigned worker_count(const struct cairn_config *cfg)
{
    cpu_set_t cpus;
    long n = cfg->workers;
    if (n == 0)
        n = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus)
                                                           : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : n > CAIRN_MAX_WORKERS ? CAIRN_MAX_WORKERS : (unsigned)n;
}

static int start(struct cairn_master *m, char *err, size_t errlen)
{
    m->cfg = check_config(m, err, errlen);
    if (m->cfg == NULL)
        return -1;
    m->stats.generation = 1;
    m->stats.last_reload_ok = true;
    const struct cairn_config *c = m->cfg;
    /* Logs first: a file that cannot be opened stops the start before
     * anything listens. */
    if (cairn_log_open(c->log.access, c->log.content, c->log.experiment, err, errlen) < 0)
        return -1;
    m->nworkers = worker_count(c);
    m->shared = cairn_shared_new(m->nworkers, err, errlen);
    if (m->shared == NULL)
        return -1;
    publish_config(m, c);
    size_t size;
    void *zone = cairn_shared_limiters(m->shared, &size);
    m->limiters = cairn_limiter_zone_init(zone, size);
    m->nlisten = c->listen.n;
    m->fds = cairn_calloc((size_t)m->nworkers * m->nlisten, sizeof(*m->fds));
    if (cairn_listen_claim(&c->listen, m->claims, err, errlen) < 0 ||
        cairn_listen_open(&c->listen, m->nworkers, "", m->fds, err, errlen) < 0 ||
        cairn_listen_open(&c->admin.listen, 1, "admin ", m->admin_fds, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < m->nlisten; i++)
        m->ports[i] = cairn_listen_port(m->fds[i]);
    /* What was set up since the check landed in the holes it left and
     * made pages of them resident again; each worker gets a copy of every
     * page the master holds at the fork, so trim once more. */
    malloc_trim(0);
    for (unsigned i = 0; i < m->nworkers; i++) {
        m->workers[i] = (struct worker){.m = m, .index = i};
        m->workers[i].restart = evtimer_new(m->base, on_restart, &m->workers[i]);
        if (start_worker(m, i) < 0) {
            snprintf(err, errlen, "cannot start worker %u: %s", i, strerror(errno));
            return -1;
        }
    }
    if (c->admin.listen.n > 0) {
        m->admin =
            cairn_server_new(m->base, c, m->admin_fds, c->admin.listen.n, cairn_admin_handle, m);
        for (size_t i = 0; i < CAIRN_MAX_LISTEN; i++)
            m->admin_fds[i] = -1; /* the server's now */
    }
    return 0;
}

int cairn_master_run(cairn_config_loader load, void *arg)
{
    struct cairn_master *m = cairn_calloc(1, sizeof(*m));
    for (size_t i = 0; i < CAIRN_MAX_LISTEN; i++)
        m->admin_fds[i] = m->claims[i] = -1;
    m->load = load;
    m->load_arg = arg;
    char err[512];
    signal(SIGPIPE, SIG_IGN);
    m->base = event_base_new();
    if (m->base == NULL) {
        fprintf(stderr, "cairn: cannot create the event loop\n");
        free(m);
        return 1;
    }
    /* The signals are watched before any worker exists, so that none of
     * their exits is missed. */
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    event_callback_fn fns[] = {on_stop, on_stop, on_reload, on_child};
    for (size_t i = 0; i < 4; i++) {
        m->signals[i] = evsignal_new(m->base, sigs[i], fns[i], m);
        event_add(m->signals[i], NULL);
    }
    int rc = 1;
    if (start(m, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        m->stopping = true;
        signal_workers(m, SIGTERM);
        while (!all_exited(m)) { /* reap what was started */
            int status;
            pid_t pid = waitpid(-1, &status, 0);
            for (unsigned i = 0; pid > 0 && i < m->nworkers; i++)
                if (m->workers[i].pid == pid)
                    m->workers[i].pid = 0;
            if (pid < 0 && errno != EINTR)
                break;
        }
    } else {
        cairn_log_msg("info", "cairn %s serving with %u worker(s), %zu tenant(s), upstream %s",
                      CAIRN_VERSION, m->nworkers,
                      m->cfg->auth == CAIRN_AUTH_OPEN ? 1 : m->cfg->ntenants,
                      m->cfg->upstreams[0].base_url);
        event_base_dispatch(m->base);
        cairn_log_msg("info", "stopped");
        rc = m->exit_code;
    }
    cairn_server_free(m->admin);
    cairn_listen_close(m->admin_fds, CAIRN_MAX_LISTEN);
    cairn_listen_close(m->claims, CAIRN_MAX_LISTEN);
    if (m->fds != NULL)
        cairn_listen_close(m->fds, (size_t)m->nworkers * m->nlisten);
    free(m->fds);
    for (unsigned i = 0; i < m->nworkers; i++)
        if (m->workers[i].restart != NULL)
            event_free(m->workers[i].restart);
    for (size_t i = 0; i < 4; i++)
        event_free(m->signals[i]);
    config_free(m->cfg);
    cairn_shared_free(m->shared);
    event_base_free(m->base);
    cairn_log_close();
    free(m);
    return rc;
}

/*
 * test_log_writer.c — unit tests for include/log_writer.h and the log
 * files of include/log.h.
 *
 * The writer is driven as the event loop drives it: lines pushed from the
 * test's thread, the files read once the writer is freed (which writes out
 * everything queued). Queue bounds are the constructor's argument, so the
 * overflow cases use small ones. A pipe whose buffer the test has filled
 * holds the writer thread inside its first write for as long as the test
 * wants: what is queued then is exactly known, and a push that waited for
 * the thread would hang the test, which alarm() turns into a failure.
 */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>

#include "log.h"
#include "log_writer.h"

#define ROOMY ((size_t)64 << 20) /* a bound no test reaches */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    umask(022);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-logw-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    return rmdir(tmpdir);
}

/* A fresh path in the test directory (removed if left by an earlier test). */
static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
    unlink(buf);
    return buf;
}

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    assert_true(fd >= 0);
    return fd;
}

static struct cairn_log_writer *writer_with(size_t bound_each)
{
    size_t bound[CAIRN_LOG_KINDS];
    char err[256];
    for (size_t k = 0; k < CAIRN_LOG_KINDS; k++)
        bound[k] = bound_each;
    struct cairn_log_writer *w = cairn_log_writer_new(bound, err, sizeof(err));
    if (w == NULL)
        fail_msg("%s", err);
    return w;
}

/* Line i: a JSON object whose length varies with i (no newline). */
static size_t line_text(char *buf, size_t size, unsigned i)
{
    char pad[200];
    memset(pad, 'a' + (int)(i % 26), sizeof(pad));
    int n = snprintf(buf, size, "{\"n\":%u,\"pad\":\"%.*s\"}", i, (int)(i * 7 % sizeof(pad)), pad);
    return (size_t)n;
}

/* What lines [from, to) make, each with its newline. */
static char *lines_text(unsigned from, unsigned to)
{
    struct sbuf b = {0};
    char line[512];
    sb_puts(&b, "");
    for (unsigned i = from; i < to; i++) {
        sb_putn(&b, line, line_text(line, sizeof(line), i));
        sb_puts(&b, "\n");
    }
    return b.p;
}

/* A file's text ("" when empty: slurp gives NULL then). */
static char *file_text(const char *path)
{
    char *text = slurp(path);
    return text != NULL ? text : strdup("");
}

static void assert_file_holds(const char *path, unsigned from, unsigned to)
{
    char *got = file_text(path), *want = lines_text(from, to);
    if (strcmp(got, want) != 0)
        fail_msg("%s does not hold exactly lines %u to %u (%zu bytes, want %zu)", path, from,
                 to - 1, strlen(got), strlen(want));
    free(got);
    free(want);
}

static void push_lines(struct cairn_log_writer *w, enum cairn_log_kind kind, unsigned from,
                       unsigned to)
{
    char line[512];
    for (unsigned i = from; i < to; i++)
        cairn_log_writer_push(w, kind, line, line_text(line, sizeof(line), i));
}

/* ---- a pipe the writer blocks on --------------------------------------- */

/* A pipe whose buffer is already full: the writer's first write to p[1]
 * blocks until the test reads p[0]. The filler is newlines (empty lines). */
static void full_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    int flags = fcntl(p[1], F_GETFL);
    fcntl(p[1], F_SETFL, flags | O_NONBLOCK);
    while (write(p[1], "\n", 1) == 1)
        continue;
    assert_int_equal(errno, EAGAIN);
    fcntl(p[1], F_SETFL, flags);
}

struct drain {
    pthread_t thread;
    int fd;
    struct sbuf text; /* what was read, the filler's empty lines removed */
};

static void *on_drain(void *arg)
{
    struct drain *d = arg;
    char buf[4096];
    ssize_t n;
    sb_puts(&d->text, "");
    while ((n = read(d->fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != '\n' || (d->text.len > 0 && d->text.p[d->text.len - 1] != '\n'))
                sb_putn(&d->text, &buf[i], 1);
    return NULL;
}

/* Read the pipe until EOF (the writer closing p[1] when freed). */
static void drain_start(struct drain *d, int fd)
{
    *d = (struct drain){.fd = fd};
    assert_int_equal(pthread_create(&d->thread, NULL, on_drain, d), 0);
}

static char *drain_end(struct drain *d)
{
    pthread_join(d->thread, NULL);
    close(d->fd);
    return d->text.p;
}

/* ---- the writer ---------------------------------------------------------- */

/* Many lines of varying length from one thread arrive whole and in order,
 * and freeing the writer right after the last push writes them all. */
static void test_lines_arrive_whole_and_in_order(void **state)
{
    (void)state;
    char path[256];
    struct cairn_log_writer *w = writer_with(ROOMY);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, open_append(tmp_path(path, 256, "order.log")));
    push_lines(w, CAIRN_LOG_ACCESS, 0, 50000);
    struct cairn_log_counters c;
    cairn_log_writer_counters(w, &c);
    cairn_log_writer_free(w);
    assert_file_holds(path, 0, 50000);
    assert_int_equal(c.dropped[CAIRN_LOG_ACCESS], 0);
    assert_int_equal(c.write_errors[CAIRN_LOG_ACCESS], 0);
}

/* Two logs on one file (messages and access records both on stderr) keep
 * the order in which their lines were pushed. */
static void test_logs_sharing_a_file_keep_their_order(void **state)
{
    (void)state;
    char path[256];
    struct cairn_log_writer *w = writer_with(ROOMY);
    int fd = open_append(tmp_path(path, 256, "shared.log"));
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, fd);
    cairn_log_writer_set_fd(w, CAIRN_LOG_MESSAGE, dup(fd));
    char line[512];
    for (unsigned i = 0; i < 5000; i++)
        cairn_log_writer_push(w, i % 3 == 0 ? CAIRN_LOG_MESSAGE : CAIRN_LOG_ACCESS, line,
                              line_text(line, sizeof(line), i));
    cairn_log_writer_free(w);
    assert_file_holds(path, 0, 5000);
}

/* With the thread stuck in a write, a log takes lines up to its bound and
 * drops the rest, counted, without the caller ever waiting; what was taken
 * still arrives whole and in order. */
static void test_full_queue_drops_and_counts(void **state)
{
    (void)state;
    alarm(10); /* a push that waited for the thread would hang here */
    int p[2];
    full_pipe(p);
    char line[512];
    size_t len = line_text(line, sizeof(line), 0);
    unsigned fit = (unsigned)(1000 / (len + 1)); /* lines of line 0's size in 1000 bytes */
    struct cairn_log_writer *w = writer_with(1000);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, p[1]);
    unsigned taken = 0;
    for (unsigned i = 0; i < 10000; i++)
        taken += cairn_log_writer_push(w, CAIRN_LOG_ACCESS, line, len);
    struct cairn_log_counters c;
    cairn_log_writer_counters(w, &c);
    assert_int_equal(taken, fit);
    assert_int_equal(c.dropped[CAIRN_LOG_ACCESS], 10000 - fit);
    assert_int_equal(c.dropped[CAIRN_LOG_CONTENT], 0); /* other logs are not charged */

    /* Another log has its own queue: it still takes lines. */
    cairn_log_writer_set_fd(w, CAIRN_LOG_EXPERIMENT, dup(p[1]));
    assert_true(cairn_log_writer_push(w, CAIRN_LOG_EXPERIMENT, line, len));
    /* A log that is off takes nothing and counts nothing. */
    assert_false(cairn_log_writer_push(w, CAIRN_LOG_CONTENT, line, len));
    alarm(0);

    struct drain d;
    drain_start(&d, p[0]);
    cairn_log_writer_free(w);
    char *got = drain_end(&d);
    struct sbuf want = {0};
    sb_puts(&want, "");
    for (unsigned i = 0; i < fit + 1; i++) {
        sb_putn(&want, line, len);
        sb_puts(&want, "\n");
    }
    assert_string_equal(got, want.p);
    free(got);
    free(want.p);
}

/* A line longer than its log's bound is taken when nothing of that log is
 * queued (a big content record is not refused for its size alone); the
 * next one, while it waits, is dropped. */
static void test_line_over_the_bound_taken_when_queue_is_empty(void **state)
{
    (void)state;
    alarm(10);
    int p[2];
    full_pipe(p);
    struct cairn_log_writer *w = writer_with(16);
    cairn_log_writer_set_fd(w, CAIRN_LOG_CONTENT, p[1]);
    char big[200];
    memset(big, 'b', sizeof(big));
    assert_true(cairn_log_writer_push(w, CAIRN_LOG_CONTENT, big, sizeof(big)));
    assert_false(cairn_log_writer_push(w, CAIRN_LOG_CONTENT, "x", 1));
    struct cairn_log_counters c;
    cairn_log_writer_counters(w, &c);
    assert_int_equal(c.dropped[CAIRN_LOG_CONTENT], 1);
    alarm(0);
    struct drain d;
    drain_start(&d, p[0]);
    cairn_log_writer_free(w);
    char *got = drain_end(&d);
    assert_int_equal(strlen(got), sizeof(big) + 1);
    free(got);
}

/* Whether path holds exactly lines [from, to) within 5 s. */
static bool file_reaches(const char *path, unsigned from, unsigned to)
{
    char *want = lines_text(from, to);
    bool same = false;
    for (int i = 0; i < 500 && !same; i++) {
        char *got = file_text(path);
        same = strcmp(got, want) == 0;
        free(got);
        if (!same)
            usleep(10000);
    }
    free(want);
    return same;
}

/* A log on a full disk counts write errors, one per failed write, and the
 * caller goes on; the thread neither dies nor retries the failing batch,
 * and once the log is moved to a healthy file it writes there again. */
static void test_failing_disk_counts_errors(void **state)
{
    (void)state;
    alarm(10);
    char path[256];
    struct cairn_log_writer *w = writer_with(ROOMY);
    int full = open("/dev/full", O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(full >= 0);
    cairn_log_writer_set_fd(w, CAIRN_LOG_EXPERIMENT, full);
    push_lines(w, CAIRN_LOG_EXPERIMENT, 0, 2000);
    cairn_log_writer_set_fd(w, CAIRN_LOG_EXPERIMENT,
                            open_append(tmp_path(path, 256, "after-full.log")));
    push_lines(w, CAIRN_LOG_EXPERIMENT, 2000, 2100);
    alarm(0);
    /* The queue is in order: the new file complete means every line for
     * /dev/full has been tried. */
    assert_true(file_reaches(path, 2000, 2100));
    struct cairn_log_counters c, later;
    cairn_log_writer_counters(w, &c);
    assert_true(c.write_errors[CAIRN_LOG_EXPERIMENT] >= 1);
    assert_true(c.write_errors[CAIRN_LOG_EXPERIMENT] <= 2000);
    assert_int_equal(c.dropped[CAIRN_LOG_EXPERIMENT], 0);
    usleep(50000);
    cairn_log_writer_counters(w, &later);
    assert_int_equal(later.write_errors[CAIRN_LOG_EXPERIMENT],
                     c.write_errors[CAIRN_LOG_EXPERIMENT]);
    cairn_log_writer_free(w);
}

/* Count the lines of `text` that hold `needle`. */
static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A failing log is reported on the message log once, not once per lost
 * line (a full disk must not flood stderr); a write that works re-arms the
 * report, so the next failure is told again. */
static void test_failing_disk_reported_once(void **state)
{
    (void)state;
    alarm(10);
    char path[256], msgs[256];
    struct cairn_log_writer *w = writer_with(ROOMY);
    cairn_log_writer_set_fd(w, CAIRN_LOG_MESSAGE,
                            open_append(tmp_path(msgs, sizeof(msgs), "messages.log")));
    int full = open("/dev/full", O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(full >= 0);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, full);
    for (unsigned i = 0; i < 20; i++) { /* several batches, each one failing */
        push_lines(w, CAIRN_LOG_ACCESS, i * 100, i * 100 + 100);
        usleep(3000);
    }
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS,
                            open_append(tmp_path(path, sizeof(path), "healthy.log")));
    push_lines(w, CAIRN_LOG_ACCESS, 0, 10);
    assert_true(file_reaches(path, 0, 10));
    full = open("/dev/full", O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(full >= 0);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, full);
    push_lines(w, CAIRN_LOG_ACCESS, 0, 100);
    cairn_log_writer_free(w);
    alarm(0);
    char *text = file_text(msgs);
    int reports = count_lines_with(text, "cannot write the access log: No space left on device");
    if (reports != 2)
        fail_msg("%d failure reports, want one per failing spell (2): %s", reports, text);
    free(text);
}

/* logrotate: the file is renamed, the log reopened at its path; lines
 * pushed before the reopen are in the renamed file, later ones in the new
 * one, none lost, none split. */
static void test_reopen_after_rename(void **state)
{
    (void)state;
    char path[256], moved[300];
    struct cairn_log_writer *w = writer_with(ROOMY);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, open_append(tmp_path(path, 256, "rot.log")));
    snprintf(moved, sizeof(moved), "%s.1", path);
    push_lines(w, CAIRN_LOG_ACCESS, 0, 20000);
    assert_int_equal(rename(path, moved), 0);
    cairn_log_writer_set_fd(w, CAIRN_LOG_ACCESS, open_append(path));
    push_lines(w, CAIRN_LOG_ACCESS, 20000, 40000);
    cairn_log_writer_free(w);
    assert_file_holds(moved, 0, 20000);
    assert_file_holds(path, 20000, 40000);
    unlink(moved);
}

/* ---- the log files of log.h --------------------------------------------- */

static void push_experiment(unsigned from, unsigned to)
{
    char line[512];
    for (unsigned i = from; i < to; i++)
        cairn_log_experiment(line, line_text(line, sizeof(line), i));
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

/* Open, rename, reload, close: each experiment line in the file it was
 * queued for, the close writing out the rest; modes as documented (the
 * experiment log is 0600 while content is logged). */
static void test_log_open_reopen_close(void **state)
{
    (void)state;
    char access[256], content[256], exp[256], moved[300], err[256];
    tmp_path(access, 256, "access.log");
    tmp_path(content, 256, "content.log");
    tmp_path(exp, 256, "experiment.log");
    snprintf(moved, sizeof(moved), "%s.1", exp);
    assert_int_equal(cairn_log_open(access, content, exp, err, sizeof(err)), 0);
    assert_true(cairn_log_content_enabled());
    assert_true(cairn_log_experiment_enabled());
    assert_int_equal(file_mode(access), 0640);
    assert_int_equal(file_mode(content), 0600);
    assert_int_equal(file_mode(exp), 0600); /* its records may hold prompts */

    push_experiment(0, 3000);
    assert_int_equal(rename(exp, moved), 0);
    assert_int_equal(cairn_log_open(access, NULL, exp, err, sizeof(err)), 0);
    assert_false(cairn_log_content_enabled());
    assert_int_equal(file_mode(exp), 0640); /* no content logged: no prompts */
    push_experiment(3000, 6000);
    cairn_log_close();
    assert_false(cairn_log_experiment_enabled());
    struct cairn_log_counters c;
    cairn_log_counters(&c);
    assert_int_equal(c.dropped[CAIRN_LOG_EXPERIMENT], 0);
    assert_file_holds(moved, 0, 3000);
    assert_file_holds(exp, 3000, 6000);
    unlink(moved);
}

/* A reopen that cannot open one log changes nothing: the files it created
 * are gone and lines still go to the logs open before. */
static void test_log_refused_open_changes_nothing(void **state)
{
    (void)state;
    char alog[256], exp[256], access2[256], exp2[256], bad[300], err[256] = "";
    tmp_path(alog, 256, "a.log");
    tmp_path(exp, 256, "e.log");
    tmp_path(access2, 256, "a2.log");
    tmp_path(exp2, 256, "e2.log");
    snprintf(bad, sizeof(bad), "%s/no-such-dir/c.log", tmpdir);
    assert_int_equal(cairn_log_open(alog, NULL, exp, err, sizeof(err)), 0);
    push_experiment(0, 10);
    assert_int_equal(cairn_log_open(access2, bad, exp2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "content log"));
    assert_int_equal(access(access2, F_OK), -1);
    assert_int_equal(access(exp2, F_OK), -1);
    assert_true(cairn_log_experiment_enabled());
    assert_false(cairn_log_content_enabled());
    push_experiment(10, 20);
    cairn_log_close();
    assert_file_holds(exp, 0, 20);
}

/* Client keys and the upstream key are masked before the content line is
 * queued; the record is one line. */
static void test_log_content_masks_keys(void **state)
{
    (void)state;
    char access[256], content[256], err[256];
    tmp_path(access, 256, "a3.log");
    tmp_path(content, 256, "c3.log");
    assert_int_equal(cairn_log_open(access, content, NULL, err, sizeof(err)), 0);
    cairn_log_content("rid-1", "t", "{\"k\":\"sk-cairn-AbC_9-z and UPSTREAM-SECRET\"}",
                      "{\"a\":\"UPSTREAM-SECRET\"}", "UPSTREAM-SECRET");
    cairn_log_close();
    char *got = file_text(content);
    assert_non_null(strstr(got, "\"request_id\":\"rid-1\""));
    assert_non_null(strstr(got, "sk-cairn-******* and ***************"));
    assert_null(strstr(got, "AbC_9"));
    assert_null(strstr(got, "SECRET"));
    assert_non_null(strstr(got, "}\n"));
    assert_int_equal(strchr(got, '\n') - got + 1, (long)strlen(got));
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_arrive_whole_and_in_order),
        cmocka_unit_test(test_logs_sharing_a_file_keep_their_order),
        cmocka_unit_test(test_full_queue_drops_and_counts),
        cmocka_unit_test(test_line_over_the_bound_taken_when_queue_is_empty),
        cmocka_unit_test(test_failing_disk_counts_errors),
        cmocka_unit_test(test_failing_disk_reported_once),
        cmocka_unit_test(test_reopen_after_rename),
        cmocka_unit_test(test_log_open_reopen_close),
        cmocka_unit_test(test_log_refused_open_changes_nothing),
        cmocka_unit_test(test_log_content_masks_keys),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}

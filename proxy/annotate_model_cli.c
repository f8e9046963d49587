/*
 * annotate_model_cli.c — `cairn annotate --model`: the annotator model over
 * JSON Lines (see annotate_cli.h), so that an operator can compare it with
 * the rules on a sample of traffic.
 *
 * The same path as serving: a snapshot of the configuration, its default
 * policy's annotator, cairn_annotation_start on an event loop. Up to
 * `concurrency` calls are out at once; answers come back in any order and
 * are written in the order of the input.
 */
#include "annotate_cli.h"

#include <stdlib.h>

#include <event2/event.h>

#include "alloc.h"
#include "annotation.h"
#include "jsonl.h"
#include "marker_block.h"

struct job {
    struct model_run *run;
    cJSON *in;  /* owned: the parsed line, NULL when it was bad */
    cJSON *out; /* owned: its result */
    struct cairn_annotation *annotation;
    bool done;
};

struct model_run {
    struct event_base *base;
    const struct cairn_snapshot *snap;
    const struct cairn_tenant *tenant;
    struct job **jobs; /* a ring in input order */
    size_t cap, head, count, inflight;
};

static void on_done(void *ctx, const struct cairn_markers *model, const char *outcome)
{
    struct job *job = ctx;
    job->annotation = NULL;
    job->done = true;
    job->run->inflight--;
    cairn_markers_to_json(model, cJSON_AddObjectToObject(job->out, "markers"));
    cJSON_AddStringToObject(job->out, "outcome", outcome);
}

/* Read and start one line. @return false at the end of input. */
static bool start_one(struct model_run *run, struct cairn_jsonl_reader *r)
{
    struct job *job = cairn_calloc(1, sizeof(*job));
    job->run = run;
    if (!cairn_jsonl_next(r, &job->in, &job->out)) {
        free(job);
        return false;
    }
    run->jobs[(run->head + run->count++) % run->cap] = job;
    const cJSON *messages =
        cJSON_IsObject(job->in) ? cJSON_GetObjectItemCaseSensitive(job->in, "messages") : NULL;
    if (job->in != NULL && !cJSON_IsArray(messages))
        cJSON_AddStringToObject(job->out, "error", "expected an object with a \"messages\" array");
    if (!cJSON_IsArray(messages)) {
        job->done = true;
        return true;
    }
    run->inflight++;
    job->annotation = cairn_annotation_start(run->base, NULL, run->snap, run->tenant, messages,
                                             "annotate", on_done, job);
    return true;
}

/* Write the finished jobs at the head, in input order. */
static int flush_done(struct model_run *run, FILE *out)
{
    int rc = 0;
    while (run->count > 0 && run->jobs[run->head]->done) {
        struct job *job = run->jobs[run->head];
        run->head = (run->head + 1) % run->cap;
        run->count--;
        if (cairn_jsonl_write(out, job->out) < 0)
            rc = -1;
        cJSON_Delete(job->in);
        free(job);
    }
    return rc;
}

int cairn_annotate_model_stream(const struct cairn_snapshot *snap, struct event_base *base,
                                size_t concurrency, FILE *in, FILE *out)
{
    struct model_run run = {.base = base, .snap = snap, .tenant = &snap->tenants[0]};
    /* The window holds what is out plus what waits behind a slow head. */
    run.cap = concurrency * 4;
    run.jobs = cairn_calloc(run.cap, sizeof(*run.jobs));
    struct cairn_jsonl_reader r = {.in = in};
    bool more = true;
    int rc = 0;
    while (more || run.count > 0) {
        while (more && run.inflight < concurrency && run.count < run.cap)
            more = start_one(&run, &r);
        if (flush_done(&run, out) < 0)
            rc = -1;
        if (run.inflight > 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
    if (ferror(in))
        rc = -1;
    cairn_jsonl_reader_free(&r);
    free(run.jobs);
    return fflush(out) == 0 ? rc : -1;
}

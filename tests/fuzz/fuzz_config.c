/*
 * fuzz_config.c — the configuration loader (include/config.h: the text of
 * a cairn.json, as the master hands it to workers) and the loaders of the
 * rules directory (taxonomy.h, annotator.h, validate.h, model_annotator.h;
 * rules_files.h reads their JSON).
 *
 * Input: one byte choosing what the rest is, then the file.
 *   0: a configuration text, loaded and walked (every policy, upstream);
 *   1: the same, then built into a snapshot as `cairn -t` does (with the
 *      rules directory pointed at the shipped rules/);
 *   2..: one file of a scratch copy of rules/ replaced by the input, then
 *      the taxonomy and every module that reads that file loaded from the
 *      copy (the file is put back after each input).
 * A load either succeeds or says why in its error message; a successful
 * one must free cleanly (no leaks under ASan).
 */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "annotator.h"
#include "config.h"
#include "fuzz.h"
#include "model_annotator.h"
#include "snapshot.h"
#include "taxonomy.h"
#include "validate.h"

/* The files a module reads, and which loaders to run when one changes. */
enum { LOAD_ANNOTATOR = 1, LOAD_VALIDATOR = 2, LOAD_PROMPT = 4 };
static const struct {
    const char *name;
    int loads;
} rules_files[] = {
    {"taxonomy.json", LOAD_ANNOTATOR | LOAD_VALIDATOR | LOAD_PROMPT},
    {"languages.json", LOAD_ANNOTATOR | LOAD_VALIDATOR},
    {"lengths.json", LOAD_ANNOTATOR},
    {"annotator.json", LOAD_ANNOTATOR | LOAD_VALIDATOR},
    {"validation.json", LOAD_VALIDATOR},
    {"annotator_prompt.txt", LOAD_PROMPT},
    {"textcat.conf", LOAD_ANNOTATOR | LOAD_VALIDATOR},
};
#define NFILES (sizeof(rules_files) / sizeof(rules_files[0]))

static char scratch[64];       /* the copy of rules/ */
static char *original[NFILES]; /* each file's shipped bytes */
static size_t original_len[NFILES];
static struct cairn_taxonomy shipped; /* rules/taxonomy.json */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap && (buf = realloc(buf, cap = cap * 2 + 4096)) == NULL)
            abort();
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *len = n;
    return buf;
}

static void write_all(const char *name, const void *buf, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void remove_scratch(void)
{
    for (size_t i = 0; i < NFILES; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", scratch, rules_files[i].name);
        unlink(path);
    }
    rmdir(scratch);
}

static void setup(void)
{
    static bool done;
    char err[512];
    if (done)
        return;
    if (cairn_taxonomy_load(&shipped, "rules/taxonomy.json", err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_config: %s (run from the repository root)\n", err);
        exit(1);
    }
    struct stat st;
    snprintf(scratch, sizeof(scratch), "%s/cairn-fuzz-rules-XXXXXX",
             stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp");
    if (mkdtemp(scratch) == NULL) {
        perror(scratch);
        exit(1);
    }
    atexit(remove_scratch);
    for (size_t i = 0; i < NFILES; i++) {
        char path[256];
        snprintf(path, sizeof(path), "rules/%s", rules_files[i].name);
        if ((original[i] = read_all(path, &original_len[i])) == NULL) {
            perror(path);
            exit(1);
        }
        write_all(rules_files[i].name, original[i], original_len[i]);
    }
    done = true;
}

static int visit_policy(const struct cairn_policy *p, const char *where, void *arg)
{
    const struct cairn_config *cfg = arg;
    FUZZ_CHECK(where != NULL && where[0] != '\0');
    /* A loaded policy names an upstream the file defines. */
    FUZZ_CHECK(p->upstream == NULL || cairn_config_upstream(cfg, p->upstream) != NULL);
    return 0;
}

static void fuzz_config_text(const uint8_t *text, size_t len, bool snapshot)
{
    struct cairn_config cfg;
    char err[1024] = "";
    char *buf = malloc(len ? len : 1); /* exactly sized: over-reads are caught */
    if (buf == NULL)
        abort();
    memcpy(buf, text, len);
    int rc = cairn_config_load_buffer(&cfg, "fuzz.json", buf, len, err, sizeof(err));
    free(buf);
    if (rc < 0) {
        FUZZ_CHECK(strncmp(err, "fuzz.json", 9) == 0); /* the message names the file */
        return;
    }
    FUZZ_CHECK(cfg.text_len == len && memcmp(cfg.text, text, len) == 0);
    cairn_config_each_policy(&cfg, visit_policy, &cfg);
    if (!snapshot) {
        cairn_config_free(&cfg);
        return;
    }
    free(cfg.rules_dir); /* the shipped rules, whatever the file says */
    cfg.rules_dir = strdup("rules");
    struct cairn_snapshot *s = cairn_snapshot_new(&cfg, NULL, NULL, 1, err, sizeof(err));
    if (s != NULL) {
        (void)cairn_snapshot_tenant(s, "Bearer sk-cairn-fuzz");
        cairn_snapshot_unref(s);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
}

static void fuzz_rules_file(size_t file, const uint8_t *text, size_t len)
{
    char err[1024];
    write_all(rules_files[file].name, text, len);
    struct cairn_taxonomy tx;
    const struct cairn_taxonomy *use = &shipped;
    bool own = cairn_taxonomy_load_dir(&tx, scratch, err, sizeof(err)) == 0;
    if (own)
        use = &tx; /* else: the modules still load against the shipped one */
    else
        FUZZ_CHECK(err[0] != '\0');
    int loads = rules_files[file].loads;
    if (loads & LOAD_ANNOTATOR) {
        struct cairn_annotator *a = cairn_annotator_load(use, scratch, err, sizeof(err));
        cairn_annotator_free(a);
    }
    if (loads & LOAD_VALIDATOR) {
        struct cairn_validator *v = cairn_validator_load(use, scratch, err, sizeof(err));
        cairn_validator_free(v);
    }
    if (loads & LOAD_PROMPT) {
        char path[256];
        snprintf(path, sizeof(path), "%s/annotator_prompt.txt", scratch);
        cairn_model_prompt_free(cairn_model_prompt_load(use, path, err, sizeof(err)));
    }
    if (own)
        cairn_taxonomy_free(&tx);
    write_all(rules_files[file].name, original[file], original_len[file]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct fuzz_in in = {data, size};
    size_t mode = fuzz_byte(&in) % (2 + NFILES);
    if (mode < 2)
        fuzz_config_text(in.p, in.n, mode == 1);
    else
        fuzz_rules_file(mode - 2, in.p, in.n);
    return 0;
}

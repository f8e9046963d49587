/*
 * main.c — the command line: serve, check, annotate, validate, key, --version,
 * --help.
 *
 * Subcommands are a table so that later ones (annotate, validate, report)
 * slot in beside these without touching the dispatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "annotate_cli.h"
#include "config.h"
#include "master.h"
#include "keys.h"
#include "report.h"
#include "secret.h"
#include "snapshot.h"
#include "upstream.h"
#include "validate_cli.h"

struct options {
    const char *config_path;
    const char *listen;   /* --listen override, or NULL */
    const char *upstream; /* --upstream override, or NULL */
    const char *rules;    /* --rules: annotate / validate with this rules directory */
    bool model;           /* --model: annotate with the annotator model */
    long concurrency;     /* --concurrency: annotator calls at once */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cairn [serve] [-c FILE] [--listen HOST:PORT] [--upstream URL]\n"
            "       cairn check [-c FILE]\n"
            "       cairn annotate [--rules DIR | -c FILE] < prompts.jsonl\n"
            "       cairn annotate --model [-c FILE] [--concurrency N] < prompts.jsonl\n"
            "       cairn validate [--rules DIR | -c FILE] < answers.jsonl\n"
            "       cairn key\n"
            "       cairn report [--json] [--html FILE] [--baseline NAME] LOG...\n"
            "       cairn --version | --help\n"
            "\n"
            "  serve      run the gateway (the default command)\n"
            "  check      validate a configuration file and its rules; exit 0 (valid) or 1\n"
            "  annotate   read JSON Lines with a \"messages\" array from stdin, write one\n"
            "             {\"id\",\"markers\"} line per input with the rule annotator's markers\n"
            "             (--model: the configuration's annotator model, with its \"outcome\")\n"
            "  validate   read JSON Lines {\"id\",\"markers\",\"response\"} from stdin, write one\n"
            "             {\"id\",\"violations\"} line per input: what the response breaks\n"
            "  key        make a client API key: prints the key (once) and the digest to\n"
            "             put in a tenant's \"keys\"\n"
            "  report     the statistics of the A/B experiments in experiment logs: per\n"
            "             arm, and each arm against the baseline (default \"control\")\n"
            "\n"
            "  -c FILE            configuration file (default %s)\n"
            "  --listen HOST:PORT listen here instead of the configured addresses\n"
            "  --upstream URL     forward to this base URL, e.g. https://api.openai.com/v1\n"
            "  --rules DIR        rules directory for annotate and validate (default: the\n"
            "                     configuration's)\n"
            "  --concurrency N    annotate --model: calls at once, 1 to 256 (default 8)\n",
            CAIRN_DEFAULT_CONFIG);
}

/* Load the configuration and apply the command-line overrides: at start,
 * and again on every reload. */
static int load_config(void *arg, const char *text, size_t len, struct cairn_config *cfg, char *err,
                       size_t errlen)
{
    const struct options *opt = arg;
    char why[512];
    if ((text != NULL ? cairn_config_load_buffer(cfg, opt->config_path, text, len, err, errlen)
                      : cairn_config_load_file(cfg, opt->config_path, err, errlen)) < 0)
        return -1;
    if (opt->listen != NULL) {
        cfg->listen.n = 1;
        if (cairn_config_parse_listen(opt->listen, &cfg->listen.items[0], why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--listen: %s", why);
            cairn_config_free(cfg);
            return -1;
        }
    }
    if (opt->upstream != NULL &&
        cairn_config_set_base_url(cfg, opt->upstream, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "--upstream: %s", why);
        cairn_config_free(cfg);
        return -1;
    }
    return 0;
}

/* Everything serving would load, without serving: the file, the rules,
 * the templates, fixed markers, keys and upstream keys' variables. */
static int cmd_check(const struct options *opt)
{
    struct cairn_config cfg;
    char err[512];
    struct cairn_snapshot *snap = NULL;
    if (load_config((void *)opt, NULL, 0, &cfg, err, sizeof(err)) == 0)
        snap = cairn_snapshot_new(&cfg, NULL, NULL, 1, err, sizeof(err));
    if (snap == NULL) {
        fprintf(stderr, "cairn: %s\n", err);
        return 1;
    }
    printf("cairn: %s: ok (rules: %s, %zu upstream(s), %s)\n", opt->config_path,
           snap->cfg.rules_dir, snap->cfg.nupstreams,
           snap->cfg.auth == CAIRN_AUTH_OPEN ? "open mode" : "API keys");
    cairn_snapshot_unref(snap);
    return 0;
}

static int cmd_serve(const struct options *opt)
{
    return cairn_master_run(load_config, (void *)opt);
}

/* A new client key: the key once on stdout, and the line for the config. */
static int cmd_key(const struct options *opt)
{
    (void)opt;
    char key[CAIRN_KEY_MAX + 1], hex[CAIRN_KEY_HEX_LEN + 1], err[128];
    if (cairn_key_generate(key, hex, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return 1;
    }
    printf("key:    %s\n"
           "config: {\"sha256\": \"%s\"}\n",
           key, hex);
    explicit_bzero(key, sizeof(key));
    return 0;
}

/* The configuration of the offline commands (annotate, validate): the
 * built-in defaults with --rules DIR as the rules directory, else the
 * configuration file. @return 0, or -1 having said why on stderr. */
static int load_offline_config(const struct options *opt, struct cairn_config *cfg)
{
    char err[512];
    if (opt->rules != NULL) {
        cairn_config_defaults(cfg);
        free(cfg->rules_dir);
        cfg->rules_dir = cairn_strdup(opt->rules);
    } else if (load_config((void *)opt, NULL, 0, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return -1;
    }
    return 0;
}

/* cairn annotate --model: the default policy's annotator model, on an
 * event loop, over the lines of stdin. */
static int annotate_with_model(const struct options *opt, struct cairn_config *cfg)
{
    char err[512];
    const struct cairn_annotator_config *a = &cfg->policy.annotator;
    if (a->upstream == NULL || cairn_config_upstream(cfg, a->upstream) == NULL) {
        fprintf(stderr, "cairn: %s: policy.annotator.upstream must name an upstream for --model\n",
                cfg->path);
        cairn_config_free(cfg);
        return 1;
    }
    /* One tenant, the default policy, asking the model and nothing else. */
    cfg->auth = CAIRN_AUTH_OPEN;
    cairn_config_drop_tenants(cfg);
    cfg->policy.markers.annotate = CAIRN_ANNOTATE_MODEL;
    cfg->policy.annotator.fallback = CAIRN_FALLBACK_NONE;
    struct event_base *base = event_base_new();
    struct cairn_upstream *client = base ? cairn_upstream_new(base) : NULL;
    struct cairn_snapshot *snap =
        client ? cairn_snapshot_new(cfg, client, NULL, 1, err, sizeof(err)) : NULL;
    int rc = 1;
    if (snap == NULL) {
        fprintf(stderr, "cairn: %s\n", base == NULL ? "cannot create the event loop" : err);
        if (client == NULL)
            cairn_config_free(cfg);
    } else {
        rc = cairn_annotate_model_stream(snap, base, (size_t)opt->concurrency, stdin, stdout) == 0
                 ? 0
                 : 1;
    }
    cairn_snapshot_unref(snap);
    cairn_upstream_free(client);
    if (base != NULL)
        event_base_free(base);
    return rc;
}

static int cmd_annotate(const struct options *opt)
{
    struct cairn_config cfg;
    char err[512];
    if (opt->model && opt->rules != NULL) {
        fprintf(stderr, "cairn: --model reads the annotator from the configuration (-c), "
                        "not --rules\n");
        return 2;
    }
    if (load_offline_config(opt, &cfg) < 0)
        return 1;
    if (opt->model)
        return annotate_with_model(opt, &cfg);
    struct cairn_taxonomy tx;
    int rc = 1;
    struct cairn_annotator *a = NULL;
    if (cairn_taxonomy_load_dir(&tx, cfg.rules_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        goto out;
    }
    a = cairn_annotator_load(&tx, cfg.rules_dir, err, sizeof(err));
    if (a == NULL) {
        fprintf(stderr, "cairn: %s\n", err);
        cairn_taxonomy_free(&tx);
        goto out;
    }
    rc = cairn_annotate_stream(a, &tx, stdin, stdout) == 0 ? 0 : 1;
    cairn_annotator_free(a);
    cairn_taxonomy_free(&tx);
out:
    cairn_config_free(&cfg);
    return rc;
}

/* The validators over JSON Lines, with the default policy's counting and
 * tolerance (the built-in defaults with --rules). */
static int cmd_validate(const struct options *opt)
{
    struct cairn_config cfg;
    char err[512];
    if (load_offline_config(opt, &cfg) < 0)
        return 1;
    int rc = cairn_validate_cli_run(&cfg, stdin, stdout, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "cairn: %s\n", err);
    cairn_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}

static const struct command {
    const char *name;
    int (*run)(const struct options *);
} commands[] = {
    {"serve", cmd_serve},       {"check", cmd_check}, {"annotate", cmd_annotate},
    {"validate", cmd_validate}, {"key", cmd_key},
};

int main(int argc, char **argv)
{
    struct options opt = {.config_path = CAIRN_DEFAULT_CONFIG, .concurrency = 8};
    const struct command *cmd = &commands[0];
    int i = 1;

    /* Code that ran before main read the environment with getenv, whose
     * vector loads of "OPENAI_API_KEY=sk-..." can be left in the stack
     * below this frame (secret.h); cairn_secret_env moves the key later. */
    cairn_secret_wipe_stack();
    /* Before any libevent allocation: client keys pass through its buffers. */
    event_set_mem_functions(malloc, cairn_scrub_realloc, cairn_scrub_free);

    /* report takes file names and options of its own. */
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return cairn_report_main(argc - 2, argv + 2);
    if (argc > 1 && argv[1][0] != '-') {
        cmd = NULL;
        for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
            if (strcmp(argv[1], commands[k].name) == 0)
                cmd = &commands[k];
        if (cmd == NULL) {
            fprintf(stderr, "cairn: unknown command '%s'\n", argv[1]);
            usage(stderr);
            return 2;
        }
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("cairn %s\n", CAIRN_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-t") == 0) {
            cmd = &commands[1]; /* nginx's spelling of "check" */
        } else if (strcmp(a, "-c") == 0 && has_value) {
            opt.config_path = argv[++i];
        } else if (strcmp(a, "--rules") == 0 && has_value) {
            opt.rules = argv[++i];
        } else if (strcmp(a, "--model") == 0) {
            opt.model = true;
        } else if (strcmp(a, "--concurrency") == 0 && has_value) {
            char *end;
            opt.concurrency = strtol(argv[++i], &end, 10);
            if (*end != '\0' || opt.concurrency < 1 || opt.concurrency > 256) {
                fprintf(stderr, "cairn: --concurrency must be 1 to 256\n");
                return 2;
            }
        } else if (strcmp(a, "--listen") == 0 && has_value) {
            opt.listen = argv[++i];
        } else if (strcmp(a, "--upstream") == 0 && has_value) {
            opt.upstream = argv[++i];
        } else {
            fprintf(stderr, "cairn: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    return cmd->run(&opt);
}

/*
 * main.c — the command line: serve, check, --version, --help.
 *
 * Subcommands are a table so that later ones (annotate, validate, report)
 * slot in beside these without touching the dispatch.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "config.h"
#include "annotate_cli.h"
#include "log.h"
#include "marking.h"
#include "proxy.h"
#include "server.h"
#include "upstream.h"

struct options {
    const char *config_path;
    const char *listen;   /* --listen override, or NULL */
    const char *upstream; /* --upstream override, or NULL */
    const char *rules;    /* --rules: annotate with this rules directory */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cairn [serve] [-c FILE] [--listen HOST:PORT] [--upstream URL]\n"
            "       cairn check [-c FILE]\n"
            "       cairn annotate [--rules DIR | -c FILE] < prompts.jsonl\n"
            "       cairn --version | --help\n"
            "\n"
            "  serve      run the gateway (the default command)\n"
            "  check      validate a configuration file and its rules; exit 0 (valid) or 1\n"
            "  annotate   read JSON Lines with a \"messages\" array from stdin, write one\n"
            "             {\"id\",\"markers\"} line per input with the rule annotator's markers\n"
            "\n"
            "  -c FILE            configuration file (default %s)\n"
            "  --listen HOST:PORT listen here instead of the configured addresses\n"
            "  --upstream URL     forward to this base URL, e.g. https://api.openai.com/v1\n"
            "  --rules DIR        rules directory for annotate (default: the configuration's)\n",
            CAIRN_DEFAULT_CONFIG);
}

/* Load the configuration and apply the command-line overrides. */
static int load_config(const struct options *opt, struct cairn_config *cfg)
{
    char err[512];
    if (cairn_config_load_file(cfg, opt->config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        return -1;
    }
    if (opt->listen != NULL) {
        cfg->nlisten = 1;
        if (cairn_config_parse_listen(opt->listen, &cfg->listen[0], err, sizeof(err)) < 0) {
            fprintf(stderr, "cairn: --listen: %s\n", err);
            cairn_config_free(cfg);
            return -1;
        }
    }
    if (opt->upstream != NULL &&
        cairn_config_set_base_url(cfg, opt->upstream, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: --upstream: %s\n", err);
        cairn_config_free(cfg);
        return -1;
    }
    return 0;
}

static int cmd_check(const struct options *opt)
{
    struct cairn_config cfg;
    struct cairn_marking marking;
    char err[512];
    if (load_config(opt, &cfg) < 0)
        return 1;
    if (cairn_marking_load(&marking, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        cairn_config_free(&cfg);
        return 1;
    }
    printf("cairn: %s: ok (rules: %s)\n", opt->config_path, cfg.markers.rules_dir);
    cairn_marking_free(&marking);
    cairn_config_free(&cfg);
    return 0;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    cairn_log_msg("info", "signal %d: draining", (int)sig);
    cairn_server_drain(arg);
}

static int cmd_serve(const struct options *opt)
{
    struct cairn_config cfg;
    char err[512];
    if (load_config(opt, &cfg) < 0)
        return 1;
    if (cairn_log_open(cfg.log.access, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        cairn_config_free(&cfg);
        return 1;
    }
    struct cairn_marking marking;
    if (cairn_marking_load(&marking, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        cairn_log_close();
        cairn_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct event_base *base = event_base_new();
    struct cairn_proxy proxy = {.cfg = &cfg, .marking = &marking};
    struct cairn_server *srv = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    if (base == NULL) {
        fprintf(stderr, "cairn: cannot create the event loop\n");
        goto out;
    }
    proxy.upstream = cairn_upstream_new(base, &cfg.upstream, err, sizeof(err));
    if (proxy.upstream == NULL) {
        fprintf(stderr, "cairn: %s\n", err);
        goto out;
    }
    srv = cairn_server_new(base, &cfg, cairn_proxy_handle, &proxy, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "cairn: %s\n", err);
        goto out;
    }
    proxy.server = srv;
    sigterm = evsignal_new(base, SIGTERM, on_stop_signal, srv);
    sigint = evsignal_new(base, SIGINT, on_stop_signal, srv);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    cairn_log_msg("info", "cairn %s serving, upstream %s", CAIRN_VERSION, cfg.upstream.base_url);

    event_base_dispatch(base);
    cairn_log_msg("info", "stopped");
    rc = 0;
out:
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    cairn_server_free(srv); /* cancels what is still in flight */
    cairn_upstream_free(proxy.upstream);
    if (base != NULL)
        event_base_free(base);
    cairn_log_close();
    cairn_marking_free(&marking);
    cairn_config_free(&cfg);
    return rc;
}

static int cmd_annotate(const struct options *opt)
{
    struct cairn_config cfg;
    char err[512];
    if (opt->rules != NULL) {
        cairn_config_defaults(&cfg);
        free(cfg.markers.rules_dir);
        cfg.markers.rules_dir = cairn_strdup(opt->rules);
    } else if (load_config(opt, &cfg) < 0) {
        return 1;
    }
    struct cairn_taxonomy tx;
    int rc = 1;
    struct cairn_annotator *a = NULL;
    if (cairn_taxonomy_load_dir(&tx, cfg.markers.rules_dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "cairn: %s\n", err);
        goto out;
    }
    a = cairn_annotator_load(&tx, cfg.markers.rules_dir, err, sizeof(err));
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

static const struct command {
    const char *name;
    int (*run)(const struct options *);
} commands[] = {
    {"serve", cmd_serve},
    {"check", cmd_check},
    {"annotate", cmd_annotate},
};

int main(int argc, char **argv)
{
    struct options opt = {.config_path = CAIRN_DEFAULT_CONFIG};
    const struct command *cmd = &commands[0];
    int i = 1;

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

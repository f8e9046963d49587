/*
 * fuzz_marker_block.c — reading the marker block a model writes at the
 * start of its answer (cairn_marker_block_parse, include/marker_block.h)
 * with the taxonomy of rules/.
 *
 * Input: one byte choosing the template (the shipped one, or others with
 * other delimiters and separators), then the annotator's (or model's)
 * output. A found block must end inside the text; every marker read must
 * be one the taxonomy accepts, in its canonical spelling; and the block
 * rendered from those markers must read back as exactly the same markers
 * (what cairn writes, it can read). The header and JSON forms of the
 * markers are built too.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "marker_block.h"
#include "markers.h"
#include "taxonomy.h"

static struct cairn_taxonomy tx;

static struct cairn_marker_template tmpls[] = {
    {.open = "<MARKER_LIST>", .close = "</MARKER_LIST>", .separator = "\n", .prefix = "\n\n"},
    {.open = "[markers]", .close = "[/markers]", .separator = " ", .prefix = "\n"},
    {.open = "{{", .close = "}}", .separator = "", .prefix = ""},
    {.open = "<m>", .close = "</m>", .separator = "\r\n", .prefix = " "},
};
#define NTMPLS (sizeof(tmpls) / sizeof(tmpls[0]))
static struct cairn_marker_format fmts[NTMPLS];

static void setup(void)
{
    static bool done;
    char err[512];
    if (done)
        return;
    if (cairn_taxonomy_load(&tx, "rules/taxonomy.json", err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_marker_block: %s (run from the repository root)\n", err);
        exit(1);
    }
    for (size_t i = 0; i < NTMPLS; i++)
        if (cairn_marker_format_init(&fmts[i], &tx, &tmpls[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "fuzz_marker_block: template %zu: %s\n", i, err);
            exit(1);
        }
    done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct fuzz_in in = {data, size};
    const struct cairn_marker_format *f = &fmts[fuzz_byte(&in) % NTMPLS];
    char *text = malloc(in.n ? in.n : 1); /* exactly sized: over-reads are caught */
    if (text == NULL)
        abort();
    memcpy(text, in.p, in.n);

    struct cairn_markers m;
    cairn_markers_init(&m, &tx);
    size_t end = 0, dropped = 0;
    int rc = cairn_marker_block_parse(f, text, in.n, &end, &m, CAIRN_SRC_MODEL, &dropped);
    FUZZ_CHECK(rc >= -1 && rc <= 1);
    if (rc != 1) {
        FUZZ_CHECK(cairn_markers_count(&m) == 0);
        free(text);
        return 0;
    }
    FUZZ_CHECK(end <= in.n);
    for (size_t i = 0; i < tx.ntags; i++) {
        if (m.source[i] == CAIRN_SRC_NONE)
            continue;
        FUZZ_CHECK(m.source[i] == CAIRN_SRC_MODEL);
        char canon[CAIRN_MARKER_VALUE_MAX], err[256];
        FUZZ_CHECK(memchr(m.value[i], '\0', sizeof(m.value[i])) != NULL);
        FUZZ_CHECK(cairn_taxonomy_canonical(&tx, (int)i, m.value[i], canon, err, sizeof(err)) == 0);
        FUZZ_CHECK(strcmp(canon, m.value[i]) == 0);
    }

    char header[2048];
    cairn_markers_format_header(&m, header, sizeof(header));
    cJSON *obj = cJSON_CreateObject();
    cairn_markers_to_json(&m, obj);
    cJSON_Delete(obj);

    /* Round trip: render what was read, read it back. */
    char *block = cairn_marker_block_render(f, &m);
    FUZZ_CHECK((block == NULL) == (cairn_markers_count(&m) == 0));
    if (block != NULL) {
        struct cairn_markers back;
        cairn_markers_init(&back, &tx);
        size_t bend = 0, bdropped = 0;
        FUZZ_CHECK(cairn_marker_block_parse(f, block, strlen(block), &bend, &back, CAIRN_SRC_MODEL,
                                            &bdropped) == 1);
        FUZZ_CHECK(bend == strlen(block) && bdropped == 0);
        FUZZ_CHECK(memcmp(back.source, m.source, sizeof(m.source)) == 0);
        for (size_t i = 0; i < tx.ntags; i++)
            FUZZ_CHECK(strcmp(back.value[i], m.value[i]) == 0);
        free(block);
    }
    free(text);
    return 0;
}

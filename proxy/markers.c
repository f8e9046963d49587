/*
 * markers.c — one request's marker set, with source precedence
 * (see markers.h).
 */
#include "markers.h"

#include <stdio.h>
#include <string.h>

void cairn_markers_init(struct cairn_markers *m, const struct cairn_taxonomy *tx)
{
    memset(m, 0, sizeof(*m));
    m->tx = tx;
}

int cairn_markers_offer(struct cairn_markers *m, int tag, const char *value,
                        enum cairn_marker_source source, char *err, size_t errlen)
{
    char canonical[CAIRN_MARKER_VALUE_MAX];
    if (tag < 0 || (size_t)tag >= m->tx->ntags) {
        snprintf(err, errlen, "no such marker");
        return -1;
    }
    if (cairn_taxonomy_canonical(m->tx, tag, value, canonical, err, errlen) < 0)
        return -1;
    if (m->source[tag] > source)
        return 0;
    memcpy(m->value[tag], canonical, sizeof(canonical));
    m->source[tag] = (unsigned char)source;
    return 0;
}

int cairn_markers_offer_key(struct cairn_markers *m, const char *key, const char *value,
                            enum cairn_marker_source source)
{
    char err[128];
    int tag = cairn_taxonomy_key(m->tx, key);
    if (tag < 0)
        return 0;
    return cairn_markers_offer(m, tag, value, source, err, sizeof(err));
}

const char *cairn_markers_get(const struct cairn_markers *m, const char *key)
{
    int tag = cairn_taxonomy_key(m->tx, key);
    return tag >= 0 && m->source[tag] != CAIRN_SRC_NONE ? m->value[tag] : NULL;
}

size_t cairn_markers_count(const struct cairn_markers *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->tx->ntags; i++)
        n += m->source[i] != CAIRN_SRC_NONE;
    return n;
}

const char *cairn_marker_source_name(enum cairn_marker_source source)
{
    switch (source) {
    case CAIRN_SRC_RULES: return "rules";
    case CAIRN_SRC_MODEL: return "model";
    case CAIRN_SRC_FIXED: return "fixed";
    case CAIRN_SRC_PINNED: return "pinned";
    default: return "none";
    }
}

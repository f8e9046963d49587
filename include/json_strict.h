/*
 * json_strict.h — one strict way to turn untrusted bytes into a cJSON tree.
 *
 * cJSON alone accepts things a gateway must not forward: duplicate keys
 * (cJSON reads the first, many upstreams the last), "\u0000" that silently
 * truncates a string, invalid UTF-8, unbounded nesting. Request bodies and
 * configuration files both come through here, so they obey the same rules.
 */
#ifndef CAIRN_JSON_STRICT_H
#define CAIRN_JSON_STRICT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/**
 * Parse buf[0..len) as one JSON value with nothing after it.
 * Rejects: invalid JSON (numbers by the RFC 8259 grammar: no "01", "1."),
 * trailing bytes, invalid UTF-8, raw control characters in strings, an
 * escaped NUL (\u0000), nesting deeper than `max_depth`, keys repeated in
 * an object (also when they differ only in case), and numbers that a
 * double cannot carry exactly (non-finite, integers of magnitude 2^53 or more).
 * @return the tree (free with cJSON_Delete), or NULL with `err` filled.
 */
cJSON *cairn_json_parse_strict(const char *buf, size_t len, int max_depth, char *err,
                               size_t errlen);

/** Read a whole file (at most `max_bytes`) and parse it strictly.
 *  @return the tree, or NULL with `err` naming the file and the problem. */
cJSON *cairn_json_load_file(const char *path, size_t max_bytes, int max_depth, char *err,
                            size_t errlen);

/**
 * Print a tree compactly, with every number written so that it reads back
 * as exactly the same double (cJSON's own printer may round off the last
 * digits). The tree is left as it was. Raw nodes are not allowed in it.
 * @return a malloc'd string of *len bytes, NUL-terminated.
 */
char *cairn_json_print(cJSON *root, size_t *len);

#endif

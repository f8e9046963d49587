/*
 * files.h — reading a whole configuration or rules file, bounded. These
 * are read at start and on reload, never on the request path.
 */
#ifndef CAIRN_FILES_H
#define CAIRN_FILES_H

#include <stddef.h>

/**
 * The whole of `path`, at most `max_bytes`, NUL-terminated (malloc'd).
 * @return the text with *len set, or NULL with err naming the path and
 *         the problem (cannot open, read error, larger than the limit).
 */
char *cairn_read_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t errlen);

#endif

/*
 * pb.h - protobuf wire-format reading and writing, just enough for ONNX.
 *
 * Reading is a cursor over bytes that are never copied: a length-delimited
 * field hands back a pointer into the input (the mmap'd model), which is how
 * kiln references weights in place.  Every length is checked against the
 * bytes that remain before it is used.
 *
 * Writing appends to a growable buffer; nested messages are written into
 * their own buffer and appended with their length.
 */
#ifndef KILN_ONNX_PB_H
#define KILN_ONNX_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    PB_WIRE_VARINT = 0,
    PB_WIRE_FIXED64 = 1,
    PB_WIRE_LEN = 2,
    PB_WIRE_START_GROUP = 3,
    PB_WIRE_END_GROUP = 4,
    PB_WIRE_FIXED32 = 5
};

typedef struct pb_reader {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
} pb_reader_t;

/* A field header and its payload, decoded by pb_next(). */
typedef struct pb_field {
    uint32_t number;
    int wire;
    uint64_t varint;       /* VARINT, FIXED32, FIXED64 payloads */
    const uint8_t *data;   /* LEN payload */
    size_t len;
} pb_field_t;

static inline pb_reader_t pb_reader(const void *data, size_t len)
{
    pb_reader_t r = {(const uint8_t *)data, (const uint8_t *)data + len};
    return r;
}

/* Reads the next field (header and payload).  Returns 1 when a field was
 * read, 0 at the end of the message, -1 on malformed bytes. */
int pb_next(pb_reader_t *r, pb_field_t *f);

/* Reads one varint from r; false when truncated or longer than 10 bytes. */
bool pb_read_varint(pb_reader_t *r, uint64_t *out);

/* ---- writer ------------------------------------------------------------ */

typedef struct pb_writer {
    uint8_t *buf;
    size_t len, cap;
    bool failed;     /* an allocation failed; the contents are incomplete */
} pb_writer_t;

void pb_put_varint_field(pb_writer_t *w, uint32_t number, uint64_t v);
void pb_put_fixed32_field(pb_writer_t *w, uint32_t number, uint32_t v);
void pb_put_bytes_field(pb_writer_t *w, uint32_t number, const void *data, size_t len);
void pb_put_string_field(pb_writer_t *w, uint32_t number, const char *s);
/* Appends sub as a nested message field, then frees sub's buffer. */
void pb_put_message_field(pb_writer_t *w, uint32_t number, pb_writer_t *sub);
void pb_put_raw(pb_writer_t *w, const void *data, size_t len);
void pb_put_varint(pb_writer_t *w, uint64_t v);
void pb_writer_free(pb_writer_t *w);

#endif

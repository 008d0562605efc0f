/*
 * pb.c - protobuf wire-format cursor and writer (see pb.h).
 */
#include "onnx/pb.h"

#include <stdlib.h>
#include <string.h>

bool pb_read_varint(pb_reader_t *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return false;
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
        if (shift == 63)
            return false;
    }
    return false;
}

int pb_next(pb_reader_t *r, pb_field_t *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t key;
    if (!pb_read_varint(r, &key))
        return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    if (f->number == 0 || (key >> 3) > 0x1fffffff)
        return -1;
    f->data = NULL;
    f->len = 0;
    f->varint = 0;
    switch (f->wire) {
    case PB_WIRE_VARINT:
        return pb_read_varint(r, &f->varint) ? 1 : -1;
    case PB_WIRE_FIXED64:
        if (r->end - r->p < 8)
            return -1;
        memcpy(&f->varint, r->p, 8);
        r->p += 8;
        return 1;
    case PB_WIRE_FIXED32: {
        uint32_t v;
        if (r->end - r->p < 4)
            return -1;
        memcpy(&v, r->p, 4);
        f->varint = v;
        r->p += 4;
        return 1;
    }
    case PB_WIRE_LEN: {
        uint64_t len;
        if (!pb_read_varint(r, &len) || len > (uint64_t)(r->end - r->p))
            return -1;
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return -1; /* groups are not used by ONNX */
    }
}

static void put(pb_writer_t *w, const void *data, size_t len)
{
    if (w->failed)
        return;
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + len)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->failed = true;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    if (len)
        memcpy(w->buf + w->len, data, len);
    w->len += len;
}

void pb_put_raw(pb_writer_t *w, const void *data, size_t len) { put(w, data, len); }

void pb_put_varint(pb_writer_t *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    put(w, tmp, n);
}

void pb_put_varint_field(pb_writer_t *w, uint32_t number, uint64_t v)
{
    pb_put_varint(w, ((uint64_t)number << 3) | PB_WIRE_VARINT);
    pb_put_varint(w, v);
}

void pb_put_fixed32_field(pb_writer_t *w, uint32_t number, uint32_t v)
{
    pb_put_varint(w, ((uint64_t)number << 3) | PB_WIRE_FIXED32);
    put(w, &v, 4);
}

void pb_put_bytes_field(pb_writer_t *w, uint32_t number, const void *data, size_t len)
{
    pb_put_varint(w, ((uint64_t)number << 3) | PB_WIRE_LEN);
    pb_put_varint(w, len);
    put(w, data, len);
}

void pb_put_string_field(pb_writer_t *w, uint32_t number, const char *s)
{
    pb_put_bytes_field(w, number, s, strlen(s));
}

void pb_put_message_field(pb_writer_t *w, uint32_t number, pb_writer_t *sub)
{
    if (sub->failed)
        w->failed = true;
    pb_put_bytes_field(w, number, sub->buf, sub->len);
    pb_writer_free(sub);
}

void pb_writer_free(pb_writer_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

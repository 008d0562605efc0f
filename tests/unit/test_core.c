/*
 * test_core.c - unit tests of the engine's core pieces: float16/bfloat16
 * conversion, shape arithmetic and its overflow guard, the protobuf wire
 * reader on good and hostile bytes, the string map, tensors and .npy files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/error.h"
#include "core/half.h"
#include "core/strmap.h"
#include "core/tensor.h"
#include "onnx/model.h"
#include "onnx/pb.h"
#include "onnx/tensor_file.h"

static void test_half(void)
{
    CHECK(kiln_f32_to_f16(1.0f) == 0x3c00);
    CHECK(kiln_f32_to_f16(-2.0f) == 0xc000);
    CHECK(kiln_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(kiln_f32_to_f16(70000.0f) == 0x7c00);          /* overflow to +inf */
    CHECK(kiln_f32_to_f16(5.9604645e-8f) == 0x0001);     /* smallest subnormal */
    CHECK(kiln_f32_to_f16(1e-9f) == 0x0000);             /* underflow to zero */
    CHECK((kiln_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (kiln_f32_to_f16(NAN) & 0x3ff) != 0);
    CHECK(kiln_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie rounds to even */
    CHECK(kiln_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(kiln_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK(kiln_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(isinf(kiln_f16_to_f32(0xfc00)) && kiln_f16_to_f32(0xfc00) < 0);
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite half survives a round trip */
        if (kiln_f32_to_f16(kiln_f16_to_f32((uint16_t)h)) != h) {
            CHECK_MSG(0, "half 0x%04x does not round-trip", h);
            break;
        }
    CHECK(kiln_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(kiln_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(kiln_f32_to_bf16(1.00390625f) == 0x3f80);      /* tie to even */
    CHECK((kiln_f32_to_bf16(NAN) & 0x7f80) == 0x7f80 && (kiln_f32_to_bf16(NAN) & 0x7f));
}

static void test_shapes(void)
{
    int64_t ok[] = {2, 3, 4};
    CHECK(kiln_shape_count(3, ok, 4) == 24);
    CHECK(kiln_shape_count(0, ok, 4) == 1);
    int64_t zero[] = {5, 0, 7};
    CHECK(kiln_shape_count(3, zero, 4) == 0);
    int64_t neg[] = {2, -1};
    CHECK(kiln_shape_count(2, neg, 4) == -1);
    int64_t huge[] = {INT64_C(1) << 32, INT64_C(1) << 32, 4};
    CHECK(kiln_shape_count(3, huge, 4) == -1);
    int64_t big_bytes[] = {INT64_C(1) << 39};
    CHECK(kiln_shape_count(1, big_bytes, 8) == -1);
    CHECK(kiln_tensor_create(KILN_DTYPE_FLOAT32, 3, huge) == NULL);
    CHECK(strstr(kiln_last_error(), "too large") != NULL);
    char buf[64];
    CHECK(!strcmp(kiln_shape_str(3, ok, buf, sizeof buf), "[2,3,4]"));
    CHECK(!strcmp(kiln_shape_str(0, ok, buf, sizeof buf), "[]"));
}

static void test_tensors(void)
{
    int64_t dims[] = {2, 2};
    float data[4] = {1, 2, 3, 4};
    CHECK(kiln_tensor_wrap(KILN_DTYPE_FLOAT32, 2, dims, data, 12) == NULL);
    CHECK(strstr(kiln_last_error(), "needs 16 bytes, 12 given") != NULL);
    kiln_tensor_t *t = kiln_tensor_wrap(KILN_DTYPE_FLOAT32, 2, dims, data, sizeof data);
    CHECK(t && kiln_tensor_count(t) == 4 && kiln_tensor_data(t) == data);
    kiln_tensor_t *c = t ? kiln_tensor_clone(t) : NULL;
    CHECK(c && c->data != data && !memcmp(c->data, data, sizeof data) && c->owns_data);
    kiln_tensor_free(c);
    kiln_tensor_free(t);
    kiln_value_t *seq = kiln_value_new_sequence(KILN_DTYPE_UNDEFINED);
    CHECK(seq != NULL);
    for (int i = 0; i < 5 && seq; i++)
        CHECK(kiln_sequence_insert(seq, 0, kiln_tensor_new(KILN_DTYPE_INT64, 1, dims)) == KILN_OK);
    CHECK(seq && seq->count == 5 && seq->elem_dtype == KILN_DTYPE_INT64);
    CHECK(seq && kiln_sequence_insert(seq, 7, kiln_tensor_new(KILN_DTYPE_INT64, 1, dims)) != KILN_OK);
    kiln_value_free(seq);
}

static void test_pb_reader(void)
{
    const uint8_t varint[] = {0x08, 0x96, 0x01}; /* field 1 = 150 */
    pb_reader_t r = pb_reader(varint, sizeof varint);
    pb_field_t f;
    CHECK(pb_next(&r, &f) == 1 && f.number == 1 && f.wire == PB_WIRE_VARINT && f.varint == 150);
    CHECK(pb_next(&r, &f) == 0);
    const uint8_t truncated[] = {0x08, 0x96};
    r = pb_reader(truncated, sizeof truncated);
    CHECK(pb_next(&r, &f) == -1);
    const uint8_t long_len[] = {0x12, 0x7f, 'a'}; /* length 127 with 1 byte left */
    r = pb_reader(long_len, sizeof long_len);
    CHECK(pb_next(&r, &f) == -1);
    const uint8_t huge_len[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    r = pb_reader(huge_len, sizeof huge_len);
    CHECK(pb_next(&r, &f) == -1);
    const uint8_t group[] = {0x0b}; /* wire type 3: groups are refused */
    r = pb_reader(group, sizeof group);
    CHECK(pb_next(&r, &f) == -1);
    const uint8_t field_zero[] = {0x00, 0x01};
    r = pb_reader(field_zero, sizeof field_zero);
    CHECK(pb_next(&r, &f) == -1);

    pb_writer_t w = {0};
    pb_put_varint_field(&w, 1, 300);
    pb_put_string_field(&w, 2, "kiln");
    pb_put_fixed32_field(&w, 3, 0xdeadbeef);
    CHECK(!w.failed);
    r = pb_reader(w.buf, w.len);
    CHECK(pb_next(&r, &f) == 1 && f.varint == 300);
    CHECK(pb_next(&r, &f) == 1 && f.len == 4 && !memcmp(f.data, "kiln", 4));
    CHECK(pb_next(&r, &f) == 1 && f.wire == PB_WIRE_FIXED32 && f.varint == 0xdeadbeef);
    pb_writer_free(&w);
}

static void test_tensor_proto(void)
{
    /* dims [2,3], float, raw_data of 24 bytes */
    float vals[6] = {1, 2, 3, 4, 5, 6};
    kiln_tensor_t *src = kiln_tensor_new(KILN_DTYPE_FLOAT32, 2, (int64_t[]){2, 3});
    memcpy(src->data, vals, sizeof vals);
    uint8_t *bytes;
    size_t len;
    CHECK(kiln_tensor_to_pb(src, "x", &bytes, &len) == KILN_OK);
    kiln_tensor_t *back = NULL;
    CHECK(kiln_onnx_parse_tensor_owned(bytes, len, &back) == KILN_OK);
    CHECK(back && back->rank == 2 && back->dims[1] == 3 && !memcmp(back->data, vals, sizeof vals));
    kiln_tensor_free(back);
    /* every truncation is refused cleanly */
    int clean = 0;
    for (size_t cut = 0; cut < len; cut++) {
        back = NULL;
        if (kiln_onnx_parse_tensor_owned(bytes, cut, &back) != KILN_OK)
            clean++;
        kiln_tensor_free(back);
    }
    CHECK_MSG(clean == (int)len, "%d of %zu truncations refused", clean, len);
    free(bytes);
    /* a shape that does not match the bytes */
    kiln_tensor_t *wrong = kiln_tensor_new(KILN_DTYPE_FLOAT32, 1, (int64_t[]){6});
    memcpy(wrong->data, vals, sizeof vals);
    CHECK(kiln_tensor_to_pb(wrong, "y", &bytes, &len) == KILN_OK);
    bytes[1] = 7; /* dims field: 6 -> 7 */
    CHECK(kiln_onnx_parse_tensor_owned(bytes, len, &back) == KILN_ERR_INVALID_MODEL);
    CHECK(strstr(kiln_last_error(), "needs 28 raw bytes, the file has 24") != NULL);
    free(bytes);
    kiln_tensor_free(wrong);
    kiln_tensor_free(src);
}

static void test_npy(void)
{
    char path[] = "/tmp/kiln_test_npy_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    kiln_tensor_t *t = kiln_tensor_new(KILN_DTYPE_INT64, 3, (int64_t[]){2, 1, 3});
    for (int i = 0; i < 6; i++)
        ((int64_t *)t->data)[i] = i * 1000000007LL;
    CHECK(kiln_npy_write(path, t) == KILN_OK);
    kiln_tensor_t *back = NULL;
    CHECK(kiln_tensor_read_file(path, &back) == KILN_OK && back && back->count == 6); /* no .npy suffix: magic sniffed */
    kiln_tensor_free(back);
    back = NULL;
    kiln_mapping_t map;
    CHECK(kiln_map_file(path, &map) == KILN_OK);
    CHECK(kiln_npy_parse(map.data, map.size, &back) == KILN_OK);
    CHECK(back && back->dtype == KILN_DTYPE_INT64 && back->rank == 3 && back->dims[2] == 3 &&
          !memcmp(back->data, t->data, t->nbytes));
    CHECK(((size_t)map.size - back->nbytes) % 64 == 0); /* data aligned as NumPy does */
    kiln_tensor_free(back);
    /* truncated data is refused */
    CHECK(kiln_npy_parse(map.data, map.size - 1, &back) != KILN_OK);
    CHECK(strstr(kiln_last_error(), "needs 48") != NULL);
    kiln_unmap(&map);
    kiln_tensor_free(t);
    unlink(path);
}

static void test_strmap(void)
{
    kiln_strmap_t m = {0};
    char keys[1000][8];
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(keys[i], sizeof keys[i], "v%d", i);
        bad += !kiln_strmap_put(&m, keys[i], i);
    }
    for (int i = 0; i < 1000; i++)
        bad += kiln_strmap_get(&m, keys[i]) != i;
    CHECK(bad == 0);
    CHECK(kiln_strmap_get(&m, "missing") == -1);
    kiln_strmap_free(&m);
}

int main(void)
{
    test_half();
    test_shapes();
    test_tensors();
    test_pb_reader();
    test_tensor_proto();
    test_npy();
    test_strmap();
    return check_finish();
}

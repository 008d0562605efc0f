/*
 * tensor_file.h - reading and writing single tensors in files: ONNX
 * TensorProto (.pb, as in the ONNX backend-test data) and NumPy (.npy,
 * format versions 1 to 3, little-endian, C order).
 */
#ifndef KILN_ONNX_TENSOR_FILE_H
#define KILN_ONNX_TENSOR_FILE_H

#include "core/tensor.h"

/* Reads FILE as .npy when its name ends in .npy (or it starts with the npy
 * magic), else as a TensorProto.  The caller frees *out. */
kiln_status_t kiln_tensor_read_file(const char *path, kiln_tensor_t **out);

/* Reads a .pb test file holding a TensorProto, SequenceProto or
 * OptionalProto, as the declared type asks. */
kiln_status_t kiln_value_read_pb_file(const char *path, kiln_value_kind_t kind, bool optional,
                                      kiln_value_t **out);

/* Parses .npy bytes. */
kiln_status_t kiln_npy_parse(const uint8_t *bytes, size_t len, kiln_tensor_t **out);

/* Writes t as a .npy file (version 1.0). Strings are refused. */
kiln_status_t kiln_npy_write(const char *path, const kiln_tensor_t *t);

/* Serializes t as a TensorProto (raw_data) into a new buffer (caller frees). */
kiln_status_t kiln_tensor_to_pb(const kiln_tensor_t *t, const char *name, uint8_t **out, size_t *out_len);

#endif

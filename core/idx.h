#pragma once
// The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte
// magic number (two zero bytes, a type code, the number of dimensions), the extents as big-endian
// uint32, then the elements in row-major order, big-endian.
//
// Type codes and the dtypes they map to:
//   0x08 unsigned byte -> kUInt8     0x0C int32 -> kInt64
//   0x0D float32       -> kFloat32   0x0E float64 -> kFloat64
// (0x09 signed byte and 0x0B int16 are part of the format but not supported: NotImplementedError.)

#include <string>

#include "core/tensor.h"

namespace veil::core {

/// Reads an IDX file, gzip-compressed or raw (detected from the gzip magic bytes 1f 8b, not from
/// the file name), into a contiguous CPU tensor with the file's shape, e.g. uint8 [60000, 28, 28]
/// for train-images-idx3-ubyte.gz and uint8 [60000] for its labels.
/// Errors: IoError naming the path when the file cannot be opened ("[read_idx] cannot open
/// '/x/y.gz': No such file or directory"), the magic number is not an IDX one, a dimension is
/// implausible (no dimensions, more than 8, an extent >= 2^31, or more than 16 GiB of data), the
/// data is truncated ("expected N data bytes, got M"), the file has bytes after the data, or the
/// gzip stream is corrupt. NotImplementedError for the int8/int16 type codes.
Tensor read_idx(const std::string& path);

/// Writes `t` as an uncompressed IDX file: uint8 -> type 0x08, int64 -> 0x0C (int32; every value
/// must fit), float32 -> 0x0D, float64 -> 0x0E. The file is written to `path + ".tmp"` and then
/// renamed over `path`, so readers never see a partial file.
/// Errors: ValueError for a 0-d tensor, a ring64 tensor, an extent >= 2^31, more than 255
/// dimensions or an int64 value outside int32; IoError when the file cannot be written or renamed.
void write_idx(const std::string& path, const Tensor& t);

}  // namespace veil::core

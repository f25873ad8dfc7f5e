#pragma once
// The safetensors file format (Hugging Face; https://huggingface.co/docs/safetensors): what
// PyTorch's `safetensors.torch.save_file(model.state_dict(), path)` writes.
//
//   bytes [0, 8)        N, the header length, an unsigned 64-bit little-endian integer
//   bytes [8, 8 + N)    the header: a UTF-8 JSON object (starts with '{', may be padded with
//                       trailing spaces) mapping every tensor name to
//                       {"dtype": "F32", "shape": [out, in], "data_offsets": [begin, end]}
//                       plus an optional "__metadata__": {string: string}
//   bytes [8 + N, EOF)  the data buffer: every tensor's elements in row-major order, little
//                       endian, at [begin, end) relative to the start of the buffer; the tensors
//                       tile the buffer without holes or overlaps.
//
// Element types and the dtypes they map to (read / write):
//   F64 <-> float64    F32 <-> float32    I64 <-> int64    U8 <-> uint8    U64 <-> ring64
//   read only, widened: F16, BF16 -> float32 (exact); I32, I16, I8, U32, U16 -> int64 (exact);
//   BOOL -> uint8 (0 or 1, anything else is refused).
// ring64 tensors (fixed-point encodings, shares) are written as U64 (safetensors' unsigned 64-bit
// type): the bits are kept, and readers that know U64 get them back unchanged.
//
// Source: the format description of the safetensors project (header layout, dtype names, the
// validation rules: offsets sorted, contiguous and covering the whole buffer).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace veil::core {

/// One tensor of a safetensors file.
struct SafetensorsEntry {
  std::string name;          ///< the key in the header, e.g. "features.0.weight"
  Tensor tensor;             ///< contiguous CPU tensor with the file's shape (widened dtype)
  std::string stored_dtype;  ///< the dtype as stored in the file ("F32", "BF16", "I64", ...)
};

/// The content of a safetensors file: tensors in the order of their data offsets (the order they
/// were written in) and the "__metadata__" strings (sorted by key; empty when absent).
struct SafetensorsFile {
  std::vector<SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;

  /// The entry named `name`, or nullptr.
  const SafetensorsEntry* find(const std::string& name) const;
};

/// Reads a safetensors file into contiguous CPU tensors (see the file comment for dtypes).
/// Cost: one pass over the file; memory: the tensors themselves plus one tensor's bytes for a
/// widened dtype.
/// Errors (IoError, message "[read_safetensors] '<path>': ...", naming the tensor where there is
/// one): the file cannot be opened or read; it is shorter than 8 bytes; the header length is 0,
/// above 100 MB or beyond the end of the file; the header is not valid JSON or not a JSON object
/// or does not start with '{'; a name is repeated; "__metadata__" is not an object of strings; an
/// entry is not {"dtype", "shape", "data_offsets"} of the right JSON types; an unknown dtype; a
/// negative or non-integer extent or offset; begin > end; end - begin differing from
/// numel * element size; offsets beyond the data buffer, overlapping, leaving a hole, or not
/// covering the buffer up to the end of the file; a BOOL element other than 0 or 1.
SafetensorsFile read_safetensors(const std::string& path);

/// Writes `tensors` (in the given order, which is also the order of their data offsets) and
/// `metadata` (as "__metadata__", keys sorted; omitted when empty) as a safetensors file. The
/// output is deterministic: a compact JSON header (keys "__metadata__" first, then the tensors in
/// the given order, each as {"dtype", "shape", "data_offsets"}) padded with spaces to a multiple
/// of 8 bytes, then the data. dtypes: float64 -> F64, float32 -> F32, int64 -> I64, uint8 -> U8,
/// ring64 -> U64. CUDA tensors are copied to the host; strided views are written in row-major
/// order.
/// Atomic: the bytes go to a fresh temporary file in the same directory, which is fsync'ed and
/// then renamed over `path`, so a reader sees either the old file or the complete new one.
/// Errors: ValueError "[write_safetensors] ..." for an empty, repeated or "__metadata__" name or an
/// undefined tensor; IoError naming the path when the file cannot be written, synced or renamed
/// (the temporary file is removed).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// The safetensors dtype name of a core dtype ("F64", "F32", "I64", "U8", "U64").
std::string safetensors_dtype_name(DType dtype);

}  // namespace veil::core

#pragma once
// Model weights in and out in PyTorch's vocabulary: state dicts with PyTorch's names
// ("features.0.weight", "fc.bias", "bn.running_mean"), order (each module's parameters, then its
// buffers, then its children, recursively) and layouts (nn::Module::to_torch_layout: Linear's
// weight is [out, in] in a file, [in, out] in veil), stored as safetensors (core/safetensors.h).
//
//   plaintext, every party alike:   save_safetensors, load_safetensors_into, torch_state_dict
//   one owner, secret or public:    load_pretrained (the owner reads the file; the others need no
//                                   file and learn only the module's own names and shapes)
//   results out to one party:       save_revealed_to (reveal_to(rank), only rank writes)
// To keep a trained model secret-shared instead, save each party's shares with the checkpoint
// helpers of models/checkpoint*.h.
//
// Values: a module's tensors are fixed-point with frac_bits f (the party's, 16 by default);
// integer buffers (frac_bits 0, e.g. BatchNorm's num_batches_tracked) are written as I64 and read
// from integer dtypes only. Reading a float encodes it with round to nearest: error <= 2^-(f+1),
// refused when |x| >= 2^(62-f) or not finite. Writing decodes exactly to float64 (F64 files
// reproduce the module bit for bit); float32 files round to 24 significant bits (exact for
// |x| < 2^(24-f), i.e. 256 at f = 16).
//
// PyTorch names and shapes, checked for every nn layer: Linear weight [out, in] (transposed on
// the way in and out), bias [out]; Conv1d [out, in/groups, k], Conv2d [out, in/groups, k, k] and
// ConvTranspose2d [in, out/groups, k, k] weights and [out] biases, as in veil; BatchNorm1d/2d
// weight, bias, running_mean, running_var [C] and num_batches_tracked (0-d I64), as in veil;
// LayerNorm weight and bias of normalized_shape, as in veil. A file entry
// "<prefix>num_batches_tracked" that the module does not have (e.g. a BatchNorm built with
// track_running_stats(false)) is accepted and ignored, even when strict.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace veil::models {

/// How files are written from a module.
struct WeightsSaveOptions {
  /// The dtype of fixed-point tensors in the file: kFloat64 (default: exact) or kFloat32
  /// (PyTorch's default, half the size; see the file comment for its rounding). Checked when
  /// used (ValueError for another dtype).
  core::DType float_dtype = core::DType::kFloat64;
  /// Strings stored as "__metadata__" ({"format": "pt"} is added unless "format" is given, as
  /// Hugging Face's writers do). Never put secret values here.
  std::map<std::string, std::string> metadata;
};

/// What a load did, by dotted name in PyTorch's order.
struct LoadReport {
  std::vector<std::string> loaded;      ///< module entries set from the file
  std::vector<std::string> missing;     ///< module entries the file lacks (left as they were)
  std::vector<std::string> unexpected;  ///< file entries the module lacks (not loaded)
  std::vector<std::string> ignored;     ///< "num_batches_tracked" entries the module lacks
  std::vector<std::string> excluded;    ///< module entries left out by exclude_prefixes
};

/// Options of load_safetensors_into / load_torch_state_dict.
struct LoadOptions {
  /// Refuse files with missing or unexpected entries (default). When false, missing entries
  /// keep their values and unexpected ones are skipped (both listed in the LoadReport).
  bool strict = true;
  /// Dotted-name prefixes left out on both sides, e.g. {"fc3."} to keep a new head's fresh
  /// weights while the file holds the old head: module entries starting with one of them are
  /// not loaded (listed in LoadReport::excluded, never "missing") and file entries starting with
  /// one of them are neither checked nor "unexpected".
  std::vector<std::string> exclude_prefixes;
};

/// Options of load_pretrained: LoadOptions plus the visibility of the loaded values.
struct PretrainedOptions : LoadOptions {
  /// Make the loaded tensors secret, shared from the owner (default), or public (a public
  /// pretrained model, e.g. frozen features that every party may see).
  bool secret = true;
};

/// The state dict of a module in PyTorch's names, order and layouts, as plaintext CPU tensors:
/// fixed-point tensors decoded to float64 and converted to `float_dtype` (kFloat64 or
/// kFloat32), integer buffers (frac_bits 0) as int64. Every tensor must be public.
/// Throws ValueError "[torch_state_dict] ..." naming the first secret tensor, or for another
/// float_dtype. No communication.
std::vector<std::pair<std::string, core::Tensor>> torch_state_dict(
    const nn::Module& module, core::DType float_dtype = core::DType::kFloat64);

/// Writes torch_state_dict(module) as a safetensors file that PyTorch's
/// `model.load_state_dict(safetensors.torch.load_file(path))` accepts for the equivalent PyTorch
/// model. Atomic (core::write_safetensors). Every tensor must be public: for a secret model use
/// save_revealed_to. Throws ValueError as torch_state_dict, IoError when writing fails.
void save_safetensors(const nn::Module& module,
                      const std::string& path,
                      const WeightsSaveOptions& options = {});

/// Loads a safetensors file in PyTorch's names and layouts into `module` as PUBLIC values (every
/// party that calls it reads its own copy of the file; all must read the same file, as they
/// build the same module). Checks everything before changing anything: names (missing and
/// unexpected entries are listed together, when strict), shapes (the PyTorch shape expected from
/// the module's shape through to_torch_layout), dtypes (F64/F32/F16/BF16 for fixed-point
/// tensors, integer dtypes for integer buffers) and values (finite, in the encoder's range).
/// Assigns in place (MpcTensor::assign_: optimizers holding the handles see the new values;
/// requires_grad is kept; a secret tensor becomes public). No communication.
/// Errors: IoError from core::read_safetensors for unreadable or malformed files; ValueError
/// "[load_safetensors] '<path>' does not match the module: ..." listing every missing,
/// unexpected, wrongly shaped or typed entry by name.
LoadReport load_safetensors_into(nn::Module& module, const std::string& path, bool strict = true);
/// Same with LoadOptions (strictness and excluded prefixes).
LoadReport load_safetensors_into(nn::Module& module,
                                 const std::string& path,
                                 const LoadOptions& options);

/// Same as load_safetensors_into for a state dict already in memory (PyTorch names and layouts;
/// float64/float32 tensors for fixed-point entries, int64 for integer buffers). `source` names
/// the state dict in error messages.
LoadReport load_torch_state_dict(nn::Module& module,
                                 const std::vector<std::pair<std::string, core::Tensor>>& state,
                                 const LoadOptions& options = {},
                                 const std::string& source = "the state dict");

/// Loads pretrained weights that only party `owner` has: the owner reads and validates the file
/// (as load_safetensors_into); every other party passes any path (it is not read) and needs
/// only the module, whose names and shapes every party knows. Then every loaded parameter and
/// buffer is assigned in place (requires_grad kept) as:
///   secret (default): a sharing of the owner's values, made like MpcTensor::share (PRZS);
///   public: the owner's values broadcast to every party.
/// Missing (strict = false) and excluded entries keep their values, made secret from the owner's
/// copy when options.secret (e.g. a new head's public initial weights).
/// Protocol: the owner broadcasts an ok flag and which module entries the file holds (and, on
/// failure, the error's type and message, which carry names, shapes and dtypes only), so that an
/// error found by the owner is thrown on every party (the same exception type, message
/// "[load_pretrained] party <owner> could not load its weights: ...") instead of leaving the
/// others waiting; then the values are shared or broadcast.
/// Cost, T = number of parameters and buffers, n = their elements, N parties: 1 round, the owner
/// sends 8(N-1)(3 + T) bytes (status), + 1 round and the message's bytes on failure; secret:
/// + 0 rounds, 0 bytes (PRZS); public: + 1 round, the owner sends 8(N-1)n bytes.
/// Security: the others learn the file's entries' presence (which module entries it holds) and,
/// on failure, the error message; nothing about values (secret mode).
/// Returns the owner's LoadReport on the owner; elsewhere `loaded` and `missing` (from the
/// broadcast flags; `unexpected` and `ignored` are known to the owner only).
/// Errors: ValueError for owner out of range (every party, no communication); the owner's
/// errors as above, on every party; CommError as the communicator.
LoadReport load_pretrained(nn::Module& module,
                           const std::string& path,
                           int owner,
                           Party& party = crypto::current_party(),
                           const PretrainedOptions& options = {});

/// Opens every parameter and buffer of `module` to party `rank` only and has that party write
/// them as a safetensors file (PyTorch names, order and layouts; byte for byte what
/// save_safetensors writes for a public module with the same values). The other parties write
/// nothing and learn nothing; they return once they have sent their shares.
/// Cost: secret tensors are opened together: 1 round, every party except `rank` sends 8 bytes per
/// secret element (8n); public tensors cost nothing. No communication when all are public.
/// Errors: ValueError for rank out of range or a bad float_dtype (every party); IoError when
/// writing fails (at `rank` only).
void save_revealed_to(const nn::Module& module,
                      int rank,
                      const std::string& path,
                      Party& party = crypto::current_party(),
                      const WeightsSaveOptions& options = {});

}  // namespace veil::models

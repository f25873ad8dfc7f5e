#pragma once
// Encrypted training checkpoints that resume bit for bit.
//
// Every party writes its own file (nothing is communicated): its shares of the secret tensors,
// the public tensors, the optimizer state, the user's step / epoch counters, and its session state
// (crypto/session_state.h: its PRG keys and stream positions, op and node counters). A run killed
// after a checkpoint and resumed from it continues exactly like the uninterrupted run: same
// messages, same dropout masks and shuffles (common PRG), same Beaver triples (the new dealer
// replays each party's stream from the position the party sends it), hence the same shares and
// the same revealed values, bit for bit.
//
// Resuming, on every party (ranks and files must match):
//   crypto::PartyOptions o = ...;
//   o.resume = models::read_checkpoint_session(path_of_this_rank);   // keys and positions
//   ... launch / Party(comm, o) ...                                  // setup checks all agree
//   Model model(...); model->encrypt(0); optim::SGD opt(model->parameters(), ...);
//   auto progress = models::load_checkpoint(path_of_this_rank, *model, &opt);
//   for (int64_t step = progress.step; step < total; ++step) { ... }
// Building the model again draws initial weights and masks; load_checkpoint rewinds those streams
// (crypto::Party::restore_streams) and replaces every value, so nothing built before the load
// matters. Load before any protocol runs in the resumed session.
//
// The file is a safetensors container (core/safetensors.h), readable by its owner only (mode
// 0600, never readable by others while being written) and written atomically (a private temporary
// directory next to the file, fsync, rename: a writer killed mid-way leaves the previous file
// intact, plus at most a stale ".<name>.ckpt-XXXXXX" directory):
//   tensors  "model.<state_dict name>"            ring64 (U64): this party's share, or the public
//                                                 encoding (identical on every party)
//            "optimizer.<i>.momentum_buffer"      SGD, parameter i of the optimizer
//            "optimizer.<i>.exp_avg" / ".exp_avg_sq"  Adam / AdamW (veil's scaled moments)
//   __metadata__ (strings)
//            format = "veil-checkpoint", format_version = "1", veil_version, rank, world_size,
//            ring = "Z_2^64", frac_bits, provider, program (PartyOptions::program_id),
//            model = the names and shapes of the state dict ("fc1.weight[4,8];fc1.bias[8];..."),
//            tensor.<tensor name> = "secret,<frac_bits>" or "public,<frac_bits>" (e.g.
//            "tensor.model.fc1.weight"),
//            optimizer = "none" | "SGD" | "Adam" | "AdamW", optimizer.lr, optimizer.params,
//            optimizer.<i>.param (its state-dict name, or "" when it is not one of the module's),
//            optimizer.<i>.shape, optimizer.<i>.step (Adam), progress.step, progress.epoch,
//            progress.extra.<key>, session.<field> (SessionState::to_fields: SECRET keys),
//            checksum = SHA-256 over every other metadata entry and every tensor (name, dtype,
//            shape, bytes), which detects corruption and truncation.
//
// Security: a checkpoint holds this party's shares and keys; protect it like the shares (anyone
// who also obtains the other parties' files learns everything). The public parts (metadata other
// than session.*) reveal nothing beyond the public setup. Resuming replays randomness: resume a
// checkpoint only to continue the same computation on the same data (see session_state.h); to
// train on other data from saved shares, load into a fresh session with restore_session = false.
//
// Consistency across parties: each file is replaced atomically, but the parties replace theirs at
// slightly different moments; a crash in between leaves files of different steps, which setup
// refuses to resume (fingerprint field "resume"). Keep per-step file names (e.g.
// "ckpt/step-000120.rank0.safetensors") and resume the newest step every party has
// (read_checkpoint_info tells the step without a session).
//
// Not saved: gradients (call zero_grad() before each backward, as usual), learning-rate
// schedulers (recreate them and step them progress.epoch times; the optimizer's lr itself is
// saved), data loaders (derive the batch order from progress.step / progress.epoch, e.g. with
// models::BatchOrder, or use progress.extra).

#include <cstdint>
#include <map>
#include <string>

#include "crypto/session_state.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace veil::models {

/// The user's counters saved with a checkpoint (public).
struct CheckpointProgress {
  /// Optimizer steps done (the next step to run when resuming).
  int64_t step = 0;
  /// Epoch in progress.
  int64_t epoch = 0;
  /// Further public values of the user (e.g. a data loader's position). Keys: non-empty, letters,
  /// digits and "_.-" only.
  std::map<std::string, std::string> extra;

  bool operator==(const CheckpointProgress&) const = default;
};

/// The public description of a checkpoint file (read_checkpoint_info).
struct CheckpointInfo {
  std::string veil_version;
  int rank = -1;
  int world_size = 0;
  std::string ring;
  int frac_bits = 0;
  std::string provider;
  std::string program;
  /// Names and shapes of the module's state dict: "fc1.weight[4,8];fc1.bias[8]".
  std::string model;
  /// "none", "SGD", "Adam" or "AdamW".
  std::string optimizer;
  /// The session's run id and resume point (crypto::SessionState::resume_point()).
  std::string run_id;
  std::string resume_point;
  CheckpointProgress progress;
};

/// Options of load_checkpoint.
struct CheckpointLoadOptions {
  /// Continue the checkpoint's session bit for bit: the session must have been set up with
  /// PartyOptions::resume = read_checkpoint_session(path), and the local streams are rewound to
  /// the checkpoint (crypto::Party::restore_streams). false: load only the tensors and optimizer
  /// state into any session of the same rank and world size (fresh keys: training goes on
  /// correctly but not bit for bit; the way to continue on other data).
  bool restore_session = true;
};

/// "name[d0,d1];name2[d]": the names and shapes of module.state_dict(), in order (what a
/// checkpoint records as "model" and load_checkpoint compares).
std::string model_fingerprint(const nn::Module& module);

/// Writes this party's checkpoint to `path` (see the file comment for the content): the module's
/// state dict, the optimizer state (nullptr: none; SGD, Adam and AdamW are supported), `progress`
/// and party.session_state(). Call it at the same point of the program on every party, between
/// steps. Local: no communication, no randomness drawn. Written atomically (the previous file at
/// `path` stays intact until the new one is complete) with mode 0600.
/// Errors: ValueError "[save_checkpoint] ..." for an optimizer of another type, a tensor of the
/// module or optimizer that belongs to another party, or a bad progress.extra key; IoError naming
/// the path when the file cannot be written.
void save_checkpoint(const std::string& path,
                     const nn::Module& module,
                     const optim::Optimizer* optimizer,
                     const CheckpointProgress& progress,
                     Party& party = crypto::current_party());

/// Reads and checks a checkpoint file (format, version and checksum) and returns its public
/// description. No party needed. Errors: IoError "[read_checkpoint] '<path>': ..." for a missing,
/// truncated or corrupt file (checksum mismatch) or one that is not a veil checkpoint of this
/// format version.
CheckpointInfo read_checkpoint_info(const std::string& path);

/// The session state stored in a checkpoint, for PartyOptions::resume (the party checks rank,
/// world size, frac_bits and provider at setup). Same errors as read_checkpoint_info, and
/// ValueError for a malformed session state. The result holds secret keys.
crypto::SessionState read_checkpoint_session(const std::string& path);

/// Loads this party's checkpoint into `module` (every parameter and buffer replaced in place:
/// optimizers holding the handles see the new values; requires_grad is kept) and `optimizer`
/// (nullptr: skip; its lr, momentum buffers / moments and step counts are restored), and rewinds
/// the session's local streams (options.restore_session). Returns the saved progress. Local: no
/// communication. Everything is checked before anything is changed.
/// Errors: those of read_checkpoint_info; ValueError "[load_checkpoint] '<path>' ..." listing
/// every differing field when the file was written by another setup (rank, world_size, ring,
/// frac_bits, provider, program) or for another model (state-dict entries missing, unexpected or
/// of another shape) or optimizer (type, parameter count or shapes); when restore_session is set
/// and the session was not resumed from this checkpoint, or has already communicated since setup.
/// Messages carry names, shapes and public fields, never values or keys.
CheckpointProgress load_checkpoint(const std::string& path,
                                   nn::Module& module,
                                   optim::Optimizer* optimizer,
                                   Party& party = crypto::current_party(),
                                   const CheckpointLoadOptions& options = {});

}  // namespace veil::models

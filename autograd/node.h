#pragma once
// The tape. Every differentiable op whose output requires grad records a Node: its inputs (the
// graph edges, in argument order), a backward closure, and a sequence number from the party's
// counter (crypto::Party::next_node_sequence). backward() collects the nodes reachable from the
// loss, sorts them by decreasing sequence number — a valid reverse topological order, identical on
// every party (architecture decision D) — and runs each once, accumulating gradients into the
// producing node of each input or, for leaves, into their .grad. Nothing iterates a
// pointer-keyed container.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/mpc_tensor.h"

namespace veil::autograd {

/// A backward rule: given the gradient of the op's output (same shape as the output) and, per
/// input, whether that input needs a gradient, returns one gradient per input (same shape as the
/// input; an undefined MpcTensor where none is needed). Runs with grad mode off.
using BackwardFn =
    std::function<std::vector<MpcTensor>(const MpcTensor& grad_output, const std::vector<bool>&)>;

/// One recorded op.
struct Node {
  /// Op name for error messages ("matmul").
  std::string name;
  /// Per-party creation order; backward runs nodes in decreasing order.
  uint64_t sequence = 0;
  /// The op's inputs, in argument order (including those that do not require grad).
  std::vector<MpcTensor> inputs;
  /// The backward rule; empty after the graph was freed.
  BackwardFn backward;
  /// Gradient of the op's output accumulated during a backward pass (engine-internal).
  MpcTensor grad;
};

/// Records `out = name(inputs)` when grad mode is on and any input requires grad: creates the Node
/// and sets it as out's grad_fn (out then requires grad). Otherwise returns `out` unchanged.
/// `out` must be a fresh tensor with no grad_fn.
MpcTensor record(const char* name,
                 MpcTensor out,
                 std::vector<MpcTensor> inputs,
                 BackwardFn backward);

/// The engine behind MpcTensor::backward (see there).
void run_backward(const MpcTensor& root, const MpcTensor& grad, bool retain_graph);

/// Adds `grad` into the accumulated gradient `acc` (undefined acc: takes grad). Public + secret
/// gives secret (local, 0 rounds).
MpcTensor accumulate(const MpcTensor& acc, const MpcTensor& grad);

}  // namespace veil::autograd

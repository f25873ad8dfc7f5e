#pragma once
// Grad mode: whether differentiable ops record graph nodes. Thread-local (each party thread has its
// own), on by default. The backward engine turns it off while it runs the backward rules, so
// gradients are never themselves differentiated (no higher-order gradients in this version).

namespace veil {

/// Thread-local switch for graph recording.
class GradMode {
 public:
  /// True when ops on tensors that require grad record nodes (the default).
  static bool is_enabled();
  /// Turns recording on or off for the calling thread.
  static void set_enabled(bool enabled);
};

/// Disables graph recording for its lifetime and restores the previous mode (like
/// torch::NoGradGuard). Use it around evaluation and parameter updates.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace veil

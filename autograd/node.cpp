#include "autograd/node.h"

#include <algorithm>
#include <unordered_set>
#include <utility>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/error.h"

namespace veil::autograd {

MpcTensor record(const char* name,
                 MpcTensor out,
                 std::vector<MpcTensor> inputs,
                 BackwardFn backward) {
  if (!GradMode::is_enabled()) {
    return out;
  }
  const bool any = std::any_of(inputs.begin(), inputs.end(),
                               [](const MpcTensor& t) { return t.defined() && t.requires_grad(); });
  if (!any) {
    return out;
  }
  VEIL_INTERNAL_ASSERT(out.grad_fn() == nullptr, "record('{}') on a tensor that has a grad_fn",
                       name);
  auto node = std::make_shared<Node>();
  node->name = name;
  node->sequence = out.party().next_node_sequence();
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.set_grad_fn(std::move(node));
  return out;
}

MpcTensor accumulate(const MpcTensor& acc, const MpcTensor& grad) {
  if (!acc.defined()) {
    return grad;
  }
  NoGradGuard no_grad;
  return add(acc, grad);
}

void run_backward(const MpcTensor& root, const MpcTensor& grad, bool retain_graph) {
  VEIL_CHECK(root.defined(), "[backward] called on an undefined tensor");
  VEIL_CHECK(root.numel() == 1,
             "[backward] expected a single-element tensor (a loss), got shape {}; reduce it "
             "first (sum/mean)",
             core::shape_str(root.shape()));
  VEIL_CHECK(root.requires_grad(),
             "[backward] the tensor does not require grad (no input requires grad, or it was "
             "computed under NoGradGuard)");
  MpcTensor seed = grad;
  if (seed.defined()) {
    VEIL_CHECK(seed.shape() == root.shape(), "[backward] expected a gradient of shape {}, got {}",
               core::shape_str(root.shape()), core::shape_str(seed.shape()));
  } else {
    Party& p = root.party();
    seed = MpcTensor::from_public_ring(
        core::Tensor::full<uint64_t>(root.shape(), p.encoder().encode_scalar(1.0)), p.frac_bits(),
        p);
  }
  NoGradGuard no_grad;
  if (root.is_leaf()) {
    MpcTensor leaf = root;  // a handle copy: the gradient lands on the caller's tensor
    leaf.set_grad(accumulate(leaf.grad(), seed));
    return;
  }
  // Collect the graph (iterative DFS over inputs in argument order; the set is membership only).
  std::vector<Node*> nodes;
  std::unordered_set<const Node*> seen;
  std::vector<Node*> stack{root.grad_fn().get()};
  seen.insert(stack.back());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    nodes.push_back(n);
    for (const MpcTensor& in : n->inputs) {
      if (in.defined() && in.grad_fn() && seen.insert(in.grad_fn().get()).second) {
        stack.push_back(in.grad_fn().get());
      }
    }
  }
  // Decreasing sequence number: every node runs after all nodes that consume its output.
  std::sort(nodes.begin(), nodes.end(),
            [](const Node* a, const Node* b) { return a->sequence > b->sequence; });
  for (const Node* n : nodes) {
    VEIL_CHECK(static_cast<bool>(n->backward),
               "[backward] the graph through '{}' was already freed; call backward(grad, "
               "/*retain_graph=*/true) to backpropagate twice",
               n->name);
  }
  root.grad_fn()->grad = seed;
  for (Node* n : nodes) {
    if (!n->grad.defined()) {
      continue;  // no path from the root carries a gradient here
    }
    std::vector<bool> needs;
    needs.reserve(n->inputs.size());
    for (const MpcTensor& in : n->inputs) {
      needs.push_back(in.defined() && in.requires_grad());
    }
    std::vector<MpcTensor> grads = n->backward(n->grad, needs);
    VEIL_INTERNAL_ASSERT(grads.size() == n->inputs.size(),
                         "backward of '{}' returned {} gradients for {} inputs", n->name,
                         grads.size(), n->inputs.size());
    n->grad = MpcTensor();
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (!needs[i] || !grads[i].defined()) {
        continue;
      }
      MpcTensor in = n->inputs[i];
      VEIL_INTERNAL_ASSERT(grads[i].shape() == in.shape(),
                           "backward of '{}': gradient {} has shape {}, input has {}", n->name, i,
                           core::shape_str(grads[i].shape()), core::shape_str(in.shape()));
      if (in.grad_fn()) {
        in.grad_fn()->grad = accumulate(in.grad_fn()->grad, grads[i]);
      } else {
        in.set_grad(accumulate(in.grad(), grads[i]));
      }
    }
    if (!retain_graph) {
      n->backward = nullptr;
    }
  }
}

}  // namespace veil::autograd

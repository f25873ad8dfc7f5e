#pragma once
// Umbrella header: the user-facing pieces of veil.
#include "autograd/autograd.h"
#include "core/tensor.h"
#include "nn/nn.h"
#include "optim/optim.h"

#pragma once
// Umbrella header: the user-facing pieces of veil.
#include "core/tensor.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/optim.h"

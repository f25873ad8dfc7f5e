#pragma once
// Umbrella header of the autograd layer: MpcTensor, the differentiable ops, the tape and
// NoGradGuard.

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/mpc_tensor.h"
#include "autograd/node.h"

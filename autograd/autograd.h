#pragma once
// Umbrella header of the autograd layer: MpcTensor, the differentiable ops, the tape and
// NoGradGuard.

#include "autograd/conv_ops.h"
#include "autograd/elementary.h"
#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "autograd/losses.h"
#include "autograd/mpc_tensor.h"
#include "autograd/node.h"
#include "autograd/norm.h"
#include "autograd/reduce_ops.h"
#include "autograd/shape_ops.h"

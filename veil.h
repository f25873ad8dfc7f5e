#pragma once
// Umbrella header: the user-facing pieces of veil.
#include "autograd/autograd.h"
#include "core/tensor.h"
#include "crypto/launch.h"
#include "models/checkpoint.h"
#include "models/data.h"
#include "models/mlp.h"
#include "models/onnx_export.h"
#include "models/onnx_import.h"
#include "models/partition.h"
#include "nn/nn.h"
#include "optim/optim.h"

#pragma once
// Umbrella header: the user-facing pieces of veil.
#include "core/tensor.h"

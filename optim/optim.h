#pragma once
// Umbrella header of the optim layer.

#include "optim/optimizer.h"
#include "optim/scheduler.h"
#include "optim/sgd.h"

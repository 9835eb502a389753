// Moved to autograd/graph_step.h (the CUDA-graph runtime uses nothing of nn); this forwarding header goes once no
// file includes it.
#pragma once
#include "autograd/graph_step.h"

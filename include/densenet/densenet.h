#pragma once

// The library in one include: the model, its options and presets, and the thread setting.
// Narrower headers live under densenet/{model,kernels,io,data,tools,util}/.
#include "densenet/model/densenet.h"
#include "densenet/model/options.h"
#include "densenet/model/presets.h"
#include "densenet/util/threads.h"

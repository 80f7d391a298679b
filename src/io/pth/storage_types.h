#pragma once

#include <torch/types.h>

#include <optional>
#include <string>

namespace densenet::pth {

/// The dtype of a PyTorch storage class named in a pickle ("torch.FloatStorage",
/// "torch.cuda.HalfStorage", "torch.UntypedStorage" = bytes), or nullopt for anything else.
std::optional<torch::Dtype> storage_dtype(const std::string& dotted_name);

/// The class torch.save names for a storage of `dtype` ("FloatStorage"); throws c10::Error
/// for dtypes a checkpoint cannot hold.
std::string storage_type_name(torch::Dtype dtype);

}  // namespace densenet::pth

#include "densenet/model/densenet.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "model/batch_norm.h"
#include "model/dense_stage.h"

#include <c10/util/Exception.h>

namespace densenet {

DenseNetImpl::DenseNetImpl(const DenseNetOptions& options_) : options(options_) {
  reset();
}

std::string DenseNetImpl::final_norm_name() const {
  return "norm" + std::to_string(options.block_config().size() + 1);
}

void DenseNetImpl::reset() {
  plan = plan_architecture(options);
  const int64_t c0 = options.num_init_features();

  features = torch::nn::Sequential();
  if (options.uses_small_stem()) {
    features->push_back(
        "conv0",
        torch::nn::Conv2d(
            torch::nn::Conv2dOptions(options.in_channels(), c0, 3).padding(1).bias(false)));
  } else {
    features->push_back("conv0",
                        torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(), c0, 7)
                                              .stride(2)
                                              .padding(3)
                                              .bias(false)));
    features->push_back("norm0", torch::nn::BatchNorm2d(c0));
    features->push_back("relu0", torch::nn::ReLU());
    features->push_back("pool0",
                        torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  }

  blocks.clear();
  transitions.clear();
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    const BlockPlan& block_plan = plan.blocks[b];
    DenseBlockOptions block_options(block_plan.num_layers, block_plan.in_channels,
                                    block_plan.growth_rate);
    block_options.bn_size(options.bn_size())
        .drop_rate(options.drop_rate())
        .memory(options.memory());
    DenseBlock block(block_options);
    features->push_back("denseblock" + std::to_string(b + 1), block);
    blocks.push_back(block);
    if (block_plan.transition_out_channels > 0) {
      Transition transition(block_plan.out_channels, block_plan.transition_out_channels);
      features->push_back("transition" + std::to_string(b + 1), transition);
      transitions.push_back(transition);
    }
  }
  final_norm = torch::nn::BatchNorm2d(plan.final_channels);
  features->push_back(final_norm_name(), final_norm);
  features = register_module("features", features);
  classifier =
      register_module("classifier", torch::nn::Linear(plan.final_channels, options.num_classes()));

  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight);
    } else if (auto* norm = module->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::constant_(norm->weight, 1);
      torch::nn::init::constant_(norm->bias, 0);
    } else if (auto* linear = module->as<torch::nn::Linear>()) {
      torch::nn::init::constant_(linear->bias, 0);
    }
  }
}

void DenseNetImpl::pretty_print(std::ostream& stream) const {
  stream << "densenet::DenseNet(depth=" << plan.depth()
         << ", growth_rate=" << options.effective_growth_rate()
         << ", block_config=" << format_int_list(options.block_config())
         << ", num_init_features=" << options.num_init_features()
         << ", bn_size=" << options.bn_size() << ", compression=" << options.compression()
         << ", num_classes=" << options.num_classes()
         << ", memory=" << memory_mode_name(options.memory()) << ")";
}

void DenseNetImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  TORCH_CHECK(c10::isFloatingType(dtype), "a DenseNet's parameters must be floating point, got ",
              dtype);
  for (auto& parameter : parameters()) {
    parameter.set_data(parameter.to(device, dtype, non_blocking));
  }
  for (auto& buffer : buffers()) {
    buffer.set_data(buffer.is_floating_point()
                        ? buffer.to(device, dtype, non_blocking)
                        : buffer.to(device, buffer.scalar_type(), non_blocking));
  }
}

void DenseNetImpl::to(torch::Dtype dtype, bool non_blocking) {
  TORCH_CHECK(c10::isFloatingType(dtype), "a DenseNet's parameters must be floating point, got ",
              dtype);
  for (auto& parameter : parameters()) parameter.set_data(parameter.to(dtype, non_blocking));
  for (auto& buffer : buffers()) {
    if (buffer.is_floating_point()) buffer.set_data(buffer.to(dtype, non_blocking));
  }
}

torch::Tensor DenseNetImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.in_channels(),
              "DenseNet expects input of shape (N, ", options.in_channels(), ", H, W), got ",
              input.sizes());
  TORCH_CHECK(input.size(0) >= 1, "DenseNet got an empty batch (N = 0)");
  const int64_t smaller_side = std::min(input.size(2), input.size(3));
  // Checked here rather than left to pooling so that the message names the cause.
  plan_architecture(options, smaller_side);
  detail::BatchNormSyncScope sync_scope(sync_ ? &sync_ : nullptr);
  if (options.memory() == MemoryMode::kNaive) {
    torch::Tensor out = input.contiguous(memory_format_);
    for (auto& child : *features) {  // features->forward, with norm0 and the final norm synced
      auto* norm = child.ptr()->as<torch::nn::BatchNorm2d>();
      out = norm != nullptr ? detail::batch_norm(*norm, out) : child.forward(out);
    }                                                                  // (N, C_final, h, w)
    out = torch::adaptive_avg_pool2d(out.relu_(), {1, 1}).flatten(1);  // (N, C_final)
    return classifier(out);
  }
  return classifier(forward_stages(forward_stem(input)));
}

void DenseNetImpl::set_memory_format(at::MemoryFormat format) {
  TORCH_CHECK(format == at::MemoryFormat::Contiguous || format == at::MemoryFormat::ChannelsLast,
              "a DenseNet's memory format is Contiguous (NCHW) or ChannelsLast (NHWC), got ",
              format);
  TORCH_CHECK(format == at::MemoryFormat::Contiguous || options.memory() == MemoryMode::kNaive,
              "channels-last applies to memory naive only: the ",
              memory_mode_name(options.memory()),
              " mode's stages keep NCHW channel planes (use --memory naive)");
  torch::NoGradGuard no_grad;
  for (auto& parameter : parameters()) {
    if (parameter.dim() == 4) parameter.set_data(parameter.contiguous(format));
  }
  memory_format_ = format;
}

void DenseNetImpl::sync_batch_norm(BatchNormAllReduce all_reduce) {
  sync_ = std::move(all_reduce);
}

torch::Tensor DenseNetImpl::forward_stem(const torch::Tensor& input) {
  // The stem is small next to the blocks; plain autograd keeps only its input and output.
  const auto stem = features->named_children();
  torch::Tensor out = stem["conv0"]->as<torch::nn::Conv2d>()->forward(input);
  if (!options.uses_small_stem()) {
    out = detail::batch_norm(*stem["norm0"]->as<torch::nn::BatchNorm2d>(), out);
    out = torch::max_pool2d(torch::relu(out), {3, 3}, {2, 2}, {1, 1});
  }
  return out;  // (N, C0, H', W')
}

torch::Tensor DenseNetImpl::forward_stages(const torch::Tensor& stem_output) {
  torch::Tensor out = stem_output;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (b < transitions.size()) {
      out = detail::run_dense_stage(*blocks[b], detail::StageTail::kTransition,
                                    transitions[b].ptr(), nullptr, out);
    } else {
      out = detail::run_dense_stage(*blocks[b], detail::StageTail::kFinal, nullptr,
                                    final_norm.ptr(), out);  // (N, C_final)
    }
  }
  return out;
}

}  // namespace densenet

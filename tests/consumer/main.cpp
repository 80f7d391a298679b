// The README's library example: build a DenseNet-BC for 28x28 grey images, print its size and
// the memory plan, run a forward pass in the memory-efficient mode.
#include <densenet/densenet.h>
#include <densenet/model/architecture.h>
#include <densenet/model/memory_plan.h>

#include <torch/torch.h>

#include <iostream>

int main() {
  densenet::DenseNetOptions options = densenet::preset_options("densenet-bc-100");
  options.in_channels(1).input_size(28).num_classes(10).memory(densenet::MemoryMode::kEfficient);
  const densenet::ArchitecturePlan plan = densenet::plan_architecture(options);
  const densenet::MemoryPlan memory = densenet::plan_memory(plan, options.memory());
  std::cout << "parameters: " << plan.num_parameters() << "\n"
            << "planned peak per sample: " << memory.peak_bytes << " bytes\n";

  densenet::DenseNet model(options);
  model->train();
  const torch::Tensor images = torch::randn({2, 1, 28, 28});  // (N, C, H, W)
  const torch::Tensor logits = model->forward(images);        // (N, classes)
  logits.sum().backward();
  std::cout << "logits: " << logits.sizes() << "\n";
  return logits.size(1) == 10 ? 0 : 1;
}

"""The two efficient-DenseNet projects' models, reduced to what their state dicts hold (module
names, parameters, buffers and shapes; no forward pass), so that check_checkpoints.py can
strict-load `densenet convert --to gpleiss|wandering007` outputs into them.

- GpleissDenseNet follows gpleiss/efficient_densenet_pytorch, models/densenet.py at commit
  d2d0629dae2912ec4f0444fab5e3df4c375c44fd (Pleiss et al., "Memory-Efficient Implementation of
  DenseNets"): torchvision's layer names (norm1, conv1, norm2, conv2), a 3x3 stem without norm0
  for small inputs, and the final batch norm features.norm_final.
- Wandering007DenseNet follows wandering007/efficient-densenet-pytorch, models/densenet.py and
  models/efficient_utils.py at commit abfa84f01ec3e2861670359047a8c1af796b2614, with
  efficient=True: each dense layer's first BN-ReLU-conv is one EfficientDensenetBottleneck with
  parameters norm_weight, norm_bias, conv_weight and buffers norm_running_mean,
  norm_running_var, norm_num_batches_tracked (the last since commit 438d605, December 2018); the
  final batch norm is features.norm{len(block_config) + 1}.
"""
import torch
from torch import nn


class GpleissDenseNet(nn.Module):
    def __init__(self, growth_rate=12, block_config=(16, 16, 16), compression=0.5,
                 num_init_features=24, bn_size=4, num_classes=10, small_inputs=True):
        super().__init__()
        self.features = nn.Sequential()
        kernel = 3 if small_inputs else 7
        self.features.add_module("conv0", nn.Conv2d(3, num_init_features, kernel, bias=False))
        if not small_inputs:
            self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        features = num_init_features
        for i, layers in enumerate(block_config):
            block = nn.Module()
            for j in range(layers):
                layer = nn.Module()
                width = features + j * growth_rate
                layer.add_module("norm1", nn.BatchNorm2d(width))
                layer.add_module("conv1", nn.Conv2d(width, bn_size * growth_rate, 1, bias=False))
                layer.add_module("norm2", nn.BatchNorm2d(bn_size * growth_rate))
                layer.add_module("conv2", nn.Conv2d(bn_size * growth_rate, growth_rate, 3,
                                                    bias=False))
                block.add_module("denselayer%d" % (j + 1), layer)
            self.features.add_module("denseblock%d" % (i + 1), block)
            features += layers * growth_rate
            if i != len(block_config) - 1:
                transition = nn.Module()
                transition.add_module("norm", nn.BatchNorm2d(features))
                transition.add_module("conv", nn.Conv2d(features, int(features * compression), 1,
                                                        bias=False))
                self.features.add_module("transition%d" % (i + 1), transition)
                features = int(features * compression)
        self.features.add_module("norm_final", nn.BatchNorm2d(features))
        self.classifier = nn.Linear(features, num_classes)


class EfficientDensenetBottleneck(nn.Module):
    def __init__(self, num_input_channels, num_output_channels, kernel_size):
        super().__init__()
        self.register_parameter("norm_weight", nn.Parameter(torch.rand(num_input_channels)))
        self.register_parameter("norm_bias", nn.Parameter(torch.zeros(num_input_channels)))
        self.register_buffer("norm_running_mean", torch.zeros(num_input_channels))
        self.register_buffer("norm_running_var", torch.ones(num_input_channels))
        self.register_buffer("norm_num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.register_parameter("conv_weight", nn.Parameter(torch.rand(
            num_output_channels, num_input_channels, kernel_size, kernel_size)))
        self.register_parameter("conv_bias", None)


class Wandering007DenseNet(nn.Module):
    """efficient=True; growth rate is num_init_features // 2, as in that project."""

    def __init__(self, in_channels=3, num_init_features=24, block_config=(12, 12, 12),
                 compression=1, input_size=32, bn_size=None, num_classes=100):
        super().__init__()
        growth_rate = num_init_features // 2
        self.features = nn.Sequential()
        kernel = 7 if input_size > 32 else 3
        self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, kernel,
                                                    bias=False))
        if input_size > 32:
            self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        features = num_init_features
        for i, layers in enumerate(block_config):
            block = nn.Module()
            for j in range(layers):
                layer = nn.Module()
                width = features + j * growth_rate
                if bn_size:
                    layer.add_module("bottleneck", EfficientDensenetBottleneck(
                        width, bn_size * growth_rate, 1))
                    layer.add_module("norm2", nn.BatchNorm2d(bn_size * growth_rate))
                    layer.add_module("conv2", nn.Conv2d(bn_size * growth_rate, growth_rate, 3,
                                                        bias=False))
                else:
                    layer.add_module("bottleneck", EfficientDensenetBottleneck(
                        width, growth_rate, 3))
                block.add_module("denselayer%d" % (j + 1), layer)
            self.features.add_module("denseblock%d" % (i + 1), block)
            features += layers * growth_rate
            if i == len(block_config) - 1:
                break
            out = int(features * compression)
            transition = nn.Module()
            transition.add_module("norm", nn.BatchNorm2d(features))
            transition.add_module("conv", nn.Conv2d(features, out, 1, bias=False))
            self.features.add_module("transition%d" % (i + 1), transition)
            features = out
        self.features.add_module("norm%d" % (len(block_config) + 1), nn.BatchNorm2d(features))
        self.classifier = nn.Linear(features, num_classes)


def gpleiss_densenet121():
    return GpleissDenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                           num_classes=1000, small_inputs=False)


def gpleiss_cifar():
    """The project's default DenseNet-BC, three blocks of 4 layers (our densenet-bc-100 with
    --block-config 4,4,4)."""
    return GpleissDenseNet(block_config=(4, 4, 4))


def wandering007_densenet121():
    return Wandering007DenseNet(num_init_features=64, block_config=(6, 12, 24, 16),
                                compression=0.5, input_size=224, bn_size=4, num_classes=1000)


def wandering007_cifar():
    return Wandering007DenseNet(num_init_features=24, block_config=(4, 4, 4), compression=0.5,
                                input_size=32, bn_size=4, num_classes=10)


def randomize(model, generator):
    """Every parameter and buffer random (counters too), so that a misplaced tensor shows."""
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if tensor.dtype == torch.long:
                tensor.fill_(int(torch.randint(1, 1000, (), generator=generator)))
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=generator)
            else:
                tensor.normal_(0, 0.1, generator=generator)
    return model

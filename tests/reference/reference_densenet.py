"""Reference DenseNet / DenseNet-BC in plain PyTorch, for golden test data only.

It follows the original efficient-densenet-pytorch constructor (in_channels, num_init_features,
growth_rate, block_config, bn_size (0 = plain layer), compression, drop_rate, num_classes,
input_size) with torchvision's module names, so that for torchvision-shaped configurations its
state dict and outputs are torchvision's (make_golden.py asserts this).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class DenseLayer(nn.Module):
    def __init__(self, in_channels, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        if bn_size > 0:
            width = bn_size * growth_rate
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
            self.norm2 = nn.BatchNorm2d(width)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False)
        self.bn_size = bn_size
        self.drop_rate = drop_rate

    def forward(self, features):
        out = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        if self.bn_size > 0:
            out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers, in_channels, growth_rate, bn_size, drop_rate):
        super().__init__()
        for i in range(num_layers):
            self.add_module("denselayer%d" % (i + 1),
                            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, in_channels=3, num_init_features=24, growth_rate=None, block_config=(12, 12, 12),
                 bn_size=0, compression=1.0, drop_rate=0.0, num_classes=100, input_size=32):
        super().__init__()
        k = growth_rate if growth_rate is not None else num_init_features // 2
        if input_size <= 32:
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1, bias=False)),
            ]))
        else:
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3,
                                    bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ]))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module("denseblock%d" % (i + 1),
                                     DenseBlock(num_layers, channels, k, bn_size, drop_rate))
            channels += num_layers * k
            if i != len(block_config) - 1:
                out = int(channels * compression)
                self.features.add_module("transition%d" % (i + 1), Transition(channels, out))
                channels = out
        self.features.add_module("norm%d" % (len(block_config) + 1), nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        out = F.relu(self.features(x))
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))


def is_torchvision_shaped(config):
    return (config["input_size"] > 32 and config["bn_size"] > 0 and config["compression"] == 0.5
            and config["in_channels"] == 3 and len(config["block_config"]) == 4)


def build(config):
    """torchvision's DenseNet when the configuration is one it can express, else the reference."""
    if is_torchvision_shaped(config):
        import torchvision
        return torchvision.models.DenseNet(growth_rate=config["growth_rate"],
                                           block_config=tuple(config["block_config"]),
                                           num_init_features=config["num_init_features"],
                                           bn_size=config["bn_size"], drop_rate=config["drop_rate"],
                                           num_classes=config["num_classes"])
    return DenseNet(**config)

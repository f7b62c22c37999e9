"""A reference U-Net written after segmentation_models_pytorch 0.3's Unet
(smp.Unet(encoder_name="resnetN", classes=C)), which cannot be installed
here: the same modules in the same order, so the same parameter names and
shapes, and the same forward. The parity tests hold Convoy's U-Net to it.

SMP's pieces, as its source has them: ResNetEncoder is torchvision's ResNet
without fc and avgpool whose forward returns the input and each stage's
output; UnetDecoder drops the first feature, reverses the rest, and runs five
DecoderBlocks (nearest x2 upsampling, concatenation with the skip, two
Conv2dReLU = Sequential(conv without bias, BatchNorm, ReLU)); the
SegmentationHead is Sequential(3x3 conv, Identity, Identity)."""
import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class ResNetEncoder(torchvision.models.resnet.ResNet):
    def __init__(self, depth):
        block, layers = {18: (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2]),
                         34: (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3]),
                         50: (torchvision.models.resnet.Bottleneck, [3, 4, 6, 3])}[depth]
        super().__init__(block, layers)
        del self.fc
        del self.avgpool
        wide = 4 if depth == 50 else 1
        self.out_channels = (3, 64, 64 * wide, 128 * wide, 256 * wide, 512 * wide)

    def forward(self, x):
        stages = [nn.Identity(), nn.Sequential(self.conv1, self.bn1, self.relu),
                  nn.Sequential(self.maxpool, self.layer1), self.layer2, self.layer3, self.layer4]
        features = []
        for stage in stages:
            x = stage(x)
            features.append(x)
        return features


class Conv2dReLU(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv1 = Conv2dReLU(in_channels + skip_channels, out_channels)
        self.attention1 = nn.Identity()
        self.conv2 = Conv2dReLU(out_channels, out_channels)
        self.attention2 = nn.Identity()

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
            x = self.attention1(x)
        return self.attention2(self.conv2(self.conv1(x)))


class UnetDecoder(nn.Module):
    def __init__(self, encoder_channels, decoder_channels=(256, 128, 64, 32, 16)):
        super().__init__()
        encoder_channels = encoder_channels[1:][::-1]
        in_channels = [encoder_channels[0]] + list(decoder_channels[:-1])
        skip_channels = list(encoder_channels[1:]) + [0]
        self.center = nn.Identity()
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in
                                    zip(in_channels, skip_channels, decoder_channels))

    def forward(self, *features):
        features = features[1:][::-1]
        x, skips = self.center(features[0]), features[1:]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


class Unet(nn.Module):
    def __init__(self, encoder_name="resnet34", classes=1):
        super().__init__()
        self.encoder = ResNetEncoder(int(encoder_name[len("resnet"):]))
        self.decoder = UnetDecoder(self.encoder.out_channels)
        self.segmentation_head = nn.Sequential(nn.Conv2d(16, classes, 3, padding=1), nn.Identity(), nn.Identity())

    def forward(self, x):
        return self.segmentation_head(self.decoder(*self.encoder(x)))

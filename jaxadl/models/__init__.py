"""Models: the report's sign CNN and the lung U-Net."""

from jaxadl.models.cnn import SignCNN
from jaxadl.models.unet import UNet, unet_cost

__all__ = ["SignCNN", "UNet", "unet_cost"]

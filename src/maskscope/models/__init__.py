"""Demo segmentation models and a loader for user models."""

from maskscope.models.loading import (
    BundledModel,
    UntrustedModelError,
    bundled_models,
    load_model,
)
from maskscope.models.unet import UNet

__all__ = ["BundledModel", "UNet", "UntrustedModelError", "bundled_models", "load_model"]

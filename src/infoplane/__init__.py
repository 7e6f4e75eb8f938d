"""infoplane: normalized-HSIC information planes of end-to-end vs layer-wise training."""

__version__ = "0.1.0"

"""Triton kernels for the folded AL-Net graph (installed as alnet_fast.kernels)."""

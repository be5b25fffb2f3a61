"""Build script: the Python package, the Triton kernels (kernels/ -> alnet_fast.kernels)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["alnet_fast", "alnet_fast.*"]) + ["alnet_fast.kernels"],
    package_dir={"alnet_fast.kernels": "kernels"},
    package_data={"alnet_fast": ["weights/*.safetensors", "data/*"]},
    include_package_data=False,
)

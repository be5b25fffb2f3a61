"""Benchmark session setup."""

import os
import tempfile

# Both peer runtimes write caches and telemetry into HOME: keep them out of the user's home.
os.environ["HOME"] = tempfile.mkdtemp(prefix="alnet_bench_home_")


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record the versions of everything compared, beside pytest-benchmark's machine_info."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("alnet_fast", "torch", "triton", "onnxruntime", "openvino", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    try:
        import alnet_fast

        versions["alnet_fast build"] = str(alnet_fast.build_info())
    except (ImportError, AttributeError):
        pass
    output_json["versions"] = versions

"""Packaging for deepforest-lite (import name ``deepforest_lite``)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version: dict[str, str] = {}
exec((HERE / "deepforest_lite" / "_version.py").read_text(), version)

setup(
    name="deepforest-lite",
    version=version["__version__"],
    description="Tree crown and bird detection in aerial RGB imagery (RetinaNet), DeepForest-compatible.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["deepforest_lite", "deepforest_lite.*"])
    + ["deepforest_lite.sample_data"],
    package_dir={"deepforest_lite.sample_data": "sample_data"},
    package_data={
        "deepforest_lite": ["configs/*.yaml", "models/*"],
        "deepforest_lite.sample_data": ["*"],
    },
    include_package_data=False,
    install_requires=[
        "torch>=2.2,<3",
        "torchvision>=0.17,<1",
        "rasterio>=1.3,<2",
        "albumentations>=1.4,<3",
        "pandas>=2.0,<4",
        "numpy>=1.24,<3",
        "safetensors>=0.4,<1",
        "huggingface_hub>=0.20,<3",
        "lightning>=2.2,<3",
        "geopandas>=0.14,<2",
        "shapely>=2.0,<3",
        "pyogrio>=0.7,<1",
        "pyproj>=3.5,<4",
        "tqdm>=4.60,<5",
        "pyyaml>=6,<7",
        "scipy>=1.10,<2",
        "torchmetrics>=1.3,<2",
        "pycocotools>=2.0.7,<3",
        "matplotlib>=3.7,<4",
        "pillow>=10,<14",
        # the default CPU engine (engine="auto") and Detector.export; see docs/performance.md
        "onnxruntime>=1.17,<2",
        "onnx>=1.15,<2",
    ],
    extras_require={
        "dev": ["pytest>=7,<10", "pytest-xdist>=3.5", "ruff>=0.6", "mypy>=1.10", "pandas-stubs>=2.0", "types-PyYAML", "types-tqdm", "openvino>=2024.0"],
        "tensorboard": ["tensorboard>=2.14,<3"],
        # engine="openvino": the fastest bf16 CPU path (docs/performance.md)
        "openvino": ["openvino>=2024.0"],
    },
    entry_points={"console_scripts": ["deepforest-lite=deepforest_lite.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: GIS",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="gte-market-maker",
    version="0.1.0",
    description="BitMEX-style grid market maker for GTE inverse perpetual futures, with a local exchange simulator",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["market_maker", "market_maker.*"]),
    py_modules=["settings_base"],
    install_requires=[
        "websocket-client>=1.6",
        "requests>=2.28",
        "aiohttp>=3.9",  # the simulator's HTTP + WebSocket server
    ],
    extras_require={
        "report": ["matplotlib>=3.5"],  # the HTML report's figures (python marketmaker report)
        "sweep": ["dask[distributed]>=2023.1", "matplotlib>=3.5"],  # python marketmaker sweep (--dask: a cluster)
        "ops": ["prometheus_client>=0.17"],  # METRICS_ADDRESS (docs/operations.md)
        "test": ["pytest>=7", "requests-mock>=1.11", "hypothesis>=6.80", "psutil>=5.9", "matplotlib>=3.5",
                 "dask[distributed]>=2023.1", "prometheus_client>=0.17"],
    },
    entry_points={"console_scripts": ["marketmaker=market_maker.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Office/Business :: Financial :: Investment",
    ],
)

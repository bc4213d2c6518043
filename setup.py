"""chitchat: real-time chat for Tornado applications.

Building (``pip install .``, a wheel, an sdist) also builds the browser client: npm
fetches sockjs-client from the registry and ``static/build.js`` writes
``chitchat/static/chitchat.js``, which ships inside the package.
"""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "chitchat", "static", "chitchat.js")


class BuildPyWithClient(build_py):
    """Build the browser client before collecting the package's files."""

    def run(self):
        if not os.path.exists(CLIENT):
            static = os.path.join(HERE, "static")
            subprocess.check_call(["npm", "ci", "--no-audit", "--no-fund"], cwd=static)
            subprocess.check_call(["npm", "run", "build"], cwd=static)
        super().run()


setup(
    name="chitchat",
    version="0.1.0",
    description="Real-time chat for Tornado applications: server plugin and browser client",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=["chitchat", "chitchat.brokers", "chitchat.stores", "chitchat.transports"],
    package_data={"chitchat": ["py.typed", "static/chitchat.js"]},
    python_requires=">=3.11",
    install_requires=[
        "tornado>=6.3,<7",
        # 1.0.7 is the last release; its git master does not import (see docs).
        "sockjs-tornado==1.0.7",
    ],
    extras_require={
        "test": [
            # pytest-tornado 0.8.1 (last release) breaks on pytest 10 and needs pkg_resources.
            "pytest>=8,<10",
            "pytest-tornado==0.8.1",
            "setuptools<81",
            "playwright>=1.40",
            "hypothesis>=6.100",
            # The Redis engine's tests run against a real redis-server (tests/run.sh).
            "redis>=5,<9",
        ],
        # RedisStore, RedisBroker, RedisPresence, Publisher: redis-py's asyncio client.
        "redis": ["redis>=5,<9"],
        "dev": ["mypy>=1.10", "ruff>=0.5"],
    },
    cmdclass={"build_py": BuildPyWithClient},
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Tornado",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Topic :: Communications :: Chat",
    ],
)

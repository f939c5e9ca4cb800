"""zerogate: a self-hosted Zero Trust Network Access platform."""

__version__ = "0.1.0"

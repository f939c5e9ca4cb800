"""The interface for sealing small secrets at rest; `zerogate.pki.sealing` implements it.

Defined here so the store can open sealed values without depending on the PKI package.
"""

from __future__ import annotations

from typing import Protocol


class SecretSealer(Protocol):
    def seal(self, secret: bytes) -> str: ...

    def open(self, sealed: str) -> bytes: ...

"""The one error the PKI raises, for every refusal a caller can act on.

The control plane turns it into a 422 problem for API clients and the CLI prints it, so the
message is written for an operator: it names what was wrong and how to fix it, and never holds
key material or the key-encryption key.
"""


class PkiError(Exception):
    """A certificate, key, CSR or CRL was refused; `str(error)` is safe to show."""

"""The one error the PKI raises: a clear message, never key material."""


class PkiError(Exception):
    pass

"""The store names connector certificates by the PKI's own kind value."""

from zerogate.pki import CertKind
from zerogate.store.connectors import CONNECTOR_KIND


def test_store_and_pki_agree_on_the_connector_kind() -> None:
    assert CertKind(CONNECTOR_KIND) is CertKind.CONNECTOR

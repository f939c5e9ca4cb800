"""The portal's passkey routes without a browser, on SQLite and PostgreSQL: a software
authenticator (ES256, "none" attestation, the byte layouts of WebAuthn Level 2 §6.1 and §6.5)
registers and signs in, then every way an answer can be wrong is refused with one message
and audited with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from webauthn.helpers import bytes_to_base64url, encode_cbor

from conftest import Control  # type: ignore[import-not-found]
from portalkit import csrf_of, events, login, make_user
from zerogate.control.portal.passkeys import NOT_ACCEPTED
from zerogate.store import credentials

ORIGIN = "https://portal.test"
UP, UV, AT = 0x01, 0x04, 0x40  # authenticator data flags, §6.1


@dataclass
class SoftAuthenticator:
    """A passkey in software: one ES256 key, a counter, and the answers a browser forwards."""

    origin: str = ORIGIN
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    user_handle: bytes | None = None
    sign_count: int = 0

    def _client_data(self, kind: str, challenge: str) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        return json.dumps(body).encode()

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return encode_cbor({1: 2, 3: -7, -1: 1, -2: x, -3: y})  # EC2, ES256, P-256

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        self.user_handle = _decode(options["user"]["id"])
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
        auth_data = rp_hash + bytes([UP | UV | AT]) + self.sign_count.to_bytes(4, "big")
        auth_data += attested + self._cose_key()
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"])
        return self._json(
            {"clientDataJSON": _b64(client_data), "attestationObject": _b64(attestation)}
        )

    def get(
        self, options: dict[str, Any], *, challenge: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        self.sign_count += 1
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([UP | UV]) + self.sign_count.to_bytes(4, "big")
        client_data = self._client_data("webauthn.get", challenge or options["challenge"])
        signed = auth_data + hashlib.sha256(client_data).digest()  # §6.3.3 step 11
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        handle = _b64(self.user_handle) if self.user_handle is not None else None
        return self._json(
            {
                "clientDataJSON": _b64(client_data),
                "authenticatorData": _b64(auth_data),
                "signature": _b64(signature),
                "userHandle": handle,
            }
        )

    def _json(self, response: dict[str, Any]) -> dict[str, Any]:
        raw_id = _b64(self.credential_id)
        return {"id": raw_id, "rawId": raw_id, "type": "public-key", "response": response}


def _b64(raw: bytes) -> str:
    return bytes_to_base64url(raw)


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def portal(control: Control, address: str = "198.51.100.7") -> TestClient:
    # Each visitor gets its own address so the per-address throttle counts them apart.
    return TestClient(control.app, base_url=ORIGIN, follow_redirects=False, client=(address, 50000))


def post(client: TestClient, path: str, token: str, body: object) -> Any:
    return client.post(path, json=body, headers={"X-CSRF-Token": token})


def registered(control: Control, username: str = "alice") -> SoftAuthenticator:
    """A user with a password and, through the account page's routes, one passkey."""
    make_user(control, username)
    client = portal(control)
    login(client, username)
    token = csrf_of(client, "/portal/account")
    options = post(client, "/portal/account/passkeys/options", token, {}).json()
    authenticator = SoftAuthenticator()
    credential = authenticator.create(options)
    done = post(
        client, "/portal/account/passkeys/verify", token, {"credential": credential, "name": "k"}
    )
    assert done.status_code == 200, done.text
    assert done.json() == {"redirect": "/portal/account?message=Passkey+added."}
    return authenticator


def begin_sign_in(client: TestClient, next_url: str = "") -> tuple[str, dict[str, Any]]:
    token = csrf_of(client)
    options = post(client, "/portal/login/passkey/options", token, {"next": next_url})
    assert options.status_code == 200, options.text
    return token, options.json()


def refusal_reasons(control: Control) -> list[str]:
    return [str(e["details"]["reason"]) for e in events(control, "login.failure")]  # type: ignore[index]


def test_register_then_sign_in_makes_a_multi_factor_session(control: Control) -> None:
    authenticator = registered(control)
    client = portal(control)
    token, options = begin_sign_in(client, "/portal/account")
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    answer = post(
        client, "/portal/login/passkey/verify", token, {"credential": authenticator.get(options)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redirect": "/portal/account"}
    assert "zg_session=" in answer.headers["set-cookie"]
    assert client.get("/portal/account").status_code == 200
    sessions = control.client.get(
        "/api/v1/sessions", params={"username": "alice"}, headers=control.admin
    ).json()
    assert sorted(s["amr"] for s in sessions) == [["hwk", "mfa"], ["pwd"]]
    enrolled = events(control, "credential.mfa_enroll")
    assert enrolled[0]["details"]["method"] == "passkey"  # type: ignore[index]
    assert events(control, "login.success")[0]["details"]["method"] == "passkey"  # type: ignore[index]
    listed = client.get("/portal/account/passkeys").json()
    assert [(p["name"], p["last_used"] != "never") for p in listed] == [("k", True)]


def test_wrong_challenge_unknown_key_and_other_rp_all_look_the_same(control: Control) -> None:
    authenticator = registered(control)
    stranger = SoftAuthenticator()
    stranger.user_handle = authenticator.user_handle
    answers: list[Any] = []
    for n, (who, kwargs) in enumerate(
        [
            (authenticator, {"challenge": _b64(secrets.token_bytes(32))}),
            (stranger, {}),
            (authenticator, {"rp_id": "evil.test"}),  # §7.2 step 15: rpIdHash
        ]
    ):
        client = portal(control, f"198.51.100.{20 + n}")
        token, options = begin_sign_in(client)
        credential = who.get(options, **kwargs)
        answers.append(
            post(client, "/portal/login/passkey/verify", token, {"credential": credential})
        )
    assert {(a.status_code, a.json()["detail"]) for a in answers} == {(400, NOT_ACCEPTED)}
    assert all("zg_session" not in a.headers.get("set-cookie", "") for a in answers)
    reasons = refusal_reasons(control)
    assert any("challenge" in r.lower() for r in reasons)
    assert "unknown credential" in reasons
    assert any("rp id" in r.lower() for r in reasons)


def test_an_answer_counts_once_and_a_falling_counter_is_a_clone(control: Control) -> None:
    authenticator = registered(control)
    client = portal(control, "198.51.100.30")
    token, options = begin_sign_in(client)
    answer = {"credential": authenticator.get(options)}
    assert post(client, "/portal/login/passkey/verify", token, answer).status_code == 200
    replay = post(client, "/portal/login/passkey/verify", token, answer)
    assert replay.status_code == 400 and replay.json()["detail"] == NOT_ACCEPTED

    clone = portal(control, "198.51.100.31")
    token, options = begin_sign_in(clone)
    authenticator.sign_count = 0  # a copy of the key that never saw the first sign-in
    cloned = post(
        clone, "/portal/login/passkey/verify", token, {"credential": authenticator.get(options)}
    )
    assert cloned.status_code == 400 and cloned.json()["detail"] == NOT_ACCEPTED
    reasons = refusal_reasons(control)
    assert any("no sign-in under way" in r for r in reasons)
    assert any("sign count" in r.lower() for r in reasons)


def test_disabled_users_and_wrong_or_missing_user_handles_are_refused(control: Control) -> None:
    authenticator = registered(control)
    good_handle = authenticator.user_handle
    client = portal(control, "198.51.100.40")

    def attempt() -> Any:
        token, options = begin_sign_in(client)
        credential = {"credential": authenticator.get(options)}
        return post(client, "/portal/login/passkey/verify", token, credential)

    for handle in (b"\x00" * 8, None):  # §7.2 step 6: someone else, or nobody, is named
        authenticator.user_handle = handle
        assert attempt().status_code == 400
    authenticator.user_handle = good_handle
    with control.db.transaction() as db:
        user = credentials.find_user(db, "alice")
        assert user is not None
        user.disabled = True
    answer = attempt()
    assert answer.status_code == 400 and answer.json()["detail"] == NOT_ACCEPTED
    reasons = refusal_reasons(control)
    assert "user disabled" in reasons
    assert len([r for r in reasons if "user handle" in r]) == 2


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"credential": "x"}', b'{"credential": {"id": 1}}', b"{" * 70_000],
)
def test_malformed_answers_are_refused_not_crashed_on(control: Control, body: bytes) -> None:
    client = portal(control)
    token, _ = begin_sign_in(client)
    answer = client.post(
        "/portal/login/passkey/verify",
        content=body,
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400 and answer.json()["detail"] == NOT_ACCEPTED
    assert refusal_reasons(control) == ["malformed answer"]


def test_repeated_failures_from_one_address_are_throttled(control: Control) -> None:
    client = portal(control, "198.51.100.50")
    statuses = []
    for _ in range(4):
        token, _ = begin_sign_in(client)
        statuses.append(post(client, "/portal/login/passkey/verify", token, {}).status_code)
    assert statuses == [400, 400, 400, 429]
    assert events(control, "login.throttled")[0]["details"]["method"] == "passkey"  # type: ignore[index]


def test_json_routes_demand_the_csrf_header_and_our_origin(control: Control) -> None:
    make_user(control)
    client = portal(control)
    login(client)
    token = csrf_of(client, "/portal/account")
    for path in ("/portal/account/passkeys/options", "/portal/login/passkey/options"):
        assert client.post(path, json={}).status_code == 403
        assert post(client, path, "forged" + token[6:], {}).status_code == 403
        cross = client.post(
            path, json={}, headers={"X-CSRF-Token": token, "Origin": "https://evil.test"}
        )
        assert cross.status_code == 403
        assert post(client, path, token, {}).status_code == 200


def test_registration_needs_a_session_and_its_own_challenge(control: Control) -> None:
    anonymous = portal(control)
    token = csrf_of(anonymous)
    assert post(anonymous, "/portal/account/passkeys/options", token, {}).status_code == 401
    make_user(control)
    client = portal(control)
    login(client)
    token = csrf_of(client, "/portal/account")
    options = post(client, "/portal/account/passkeys/options", token, {}).json()
    options["challenge"] = _b64(secrets.token_bytes(32))  # answered for another challenge
    credential = SoftAuthenticator().create(options)
    refused = post(client, "/portal/account/passkeys/verify", token, {"credential": credential})
    assert refused.status_code == 400
    assert client.get("/portal/account/passkeys").json() == []
    failed = events(control, "credential.mfa_enroll")
    assert failed[0]["outcome"] == "failure"


def test_a_credential_id_registers_once_and_only_its_owner_removes_it(control: Control) -> None:
    authenticator = registered(control, "alice")
    make_user(control, "bob")
    bob = portal(control)
    login(bob, "bob")
    token = csrf_of(bob, "/portal/account")
    options = post(bob, "/portal/account/passkeys/options", token, {}).json()
    copy = SoftAuthenticator(credential_id=authenticator.credential_id)  # §7.1 step 22
    refused = post(
        bob, "/portal/account/passkeys/verify", token, {"credential": copy.create(options)}
    )
    assert refused.status_code == 400

    alice = portal(control)
    login(alice, "alice")
    (mine,) = alice.get("/portal/account/passkeys").json()
    bob.post(f"/portal/account/passkeys/{mine['id']}/remove", data={"csrf": token})
    assert len(alice.get("/portal/account/passkeys").json()) == 1
    alice_token = csrf_of(alice, "/portal/account")
    removed = alice.post(
        f"/portal/account/passkeys/{mine['id']}/remove", data={"csrf": alice_token}
    )
    assert removed.status_code == 303
    assert alice.get("/portal/account/passkeys").json() == []
    assert events(control, "credential.mfa_disable")[0]["target"] == "user/alice"

// Passkeys in the zerogate portal: the browser half of zerogate.control.portal.passkeys.
//
// The Content-Security-Policy allows no inline script, so pages hand data over in data-*
// attributes (the CSRF token, where to go next) and everything else comes from JSON routes.
// WebAuthn speaks ArrayBuffers and the server speaks base64url JSON; the helpers below
// convert by hand rather than rely on PublicKeyCredential.parse*OptionsFromJSON, which
// older browsers lack.
"use strict";

(() => {
  const fromB64url = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  };

  const toB64url = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const descriptors = (list) => (list || []).map((d) => ({ ...d, id: fromB64url(d.id) }));

  const creationOptions = (json) => ({
    ...json,
    challenge: fromB64url(json.challenge),
    user: { ...json.user, id: fromB64url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  });

  const requestOptions = (json) => ({
    ...json,
    challenge: fromB64url(json.challenge),
    allowCredentials: descriptors(json.allowCredentials),
  });

  const common = (credential) => ({
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  });

  const registrationJSON = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toB64url(credential.response.clientDataJSON),
      attestationObject: toB64url(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
  });

  const assertionJSON = (credential) => ({
    ...common(credential),
    response: {
      clientDataJSON: toB64url(credential.response.clientDataJSON),
      authenticatorData: toB64url(credential.response.authenticatorData),
      signature: toB64url(credential.response.signature),
      userHandle: credential.response.userHandle ? toB64url(credential.response.userHandle) : null,
    },
  });

  // Failures carry {"detail": "..."} (the portal's one error shape); show that, or a
  // generic line when the server sent nothing readable.
  const post = async (url, csrf, body) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || "Something went wrong. Try again.");
    return data;
  };

  // DOMExceptions come from the browser's own dialog: cancelled, timed out, or (on
  // registration) an authenticator that already holds one of the user's passkeys.
  const explain = (error) => {
    if (!(error instanceof DOMException)) return error.message;
    if (error.name === "InvalidStateError") return "This device already holds one of your passkeys.";
    return "The passkey was not used. Try again, or sign in with your password.";
  };

  const showError = (element, message) => {
    element.textContent = message;
    element.hidden = false;
  };

  const signIn = async (button) => {
    const csrf = button.dataset.csrf;
    const options = await post("/portal/login/passkey/options", csrf, { next: button.dataset.next });
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    const done = await post("/portal/login/passkey/verify", csrf, {
      credential: assertionJSON(credential),
    });
    window.location.assign(done.redirect);
  };

  const register = async (section) => {
    const csrf = section.dataset.csrf;
    const options = await post("/portal/account/passkeys/options", csrf, {});
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const done = await post("/portal/account/passkeys/verify", csrf, {
      credential: registrationJSON(credential),
      name: section.querySelector("#passkey-name").value,
    });
    window.location.assign(done.redirect);
  };

  const cell = (row, text) => {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
    return td;
  };

  // A real form per passkey, so removal is the same CSRF-checked POST as the page's others.
  const removeForm = (id, csrf) => {
    const form = document.createElement("form");
    form.className = "inline";
    form.method = "post";
    form.action = `/portal/account/passkeys/${id}/remove`;
    const token = document.createElement("input");
    Object.assign(token, { type: "hidden", name: "csrf", value: csrf });
    const button = document.createElement("button");
    Object.assign(button, { type: "submit", className: "danger", textContent: "Remove" });
    form.append(token, button);
    return form;
  };

  const listPasskeys = async (section) => {
    const table = section.querySelector("#passkey-list");
    const response = await fetch("/portal/account/passkeys", { credentials: "same-origin" });
    if (!response.ok) return;
    const rows = await response.json();
    for (const passkey of rows) {
      const row = document.createElement("tr");
      row.dataset.id = passkey.id;
      cell(row, passkey.name);
      cell(row, passkey.created);
      cell(row, passkey.last_used);
      cell(row, "").append(removeForm(passkey.id, section.dataset.csrf));
      table.append(row);
    }
    section.querySelector("#passkey-none").hidden = rows.length > 0;
  };

  // Buttons start hidden inside a [hidden] wrapper (the stylesheet's `display` on buttons
  // would beat their own `hidden`) and appear only where WebAuthn exists.
  const wire = (wrapper, button, errorBox, action) => {
    wrapper.hidden = false;
    button.addEventListener("click", async () => {
      errorBox.hidden = true;
      button.disabled = true;
      try {
        await action();
      } catch (error) {
        showError(errorBox, explain(error));
      } finally {
        button.disabled = false;
      }
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    const supported = typeof window.PublicKeyCredential === "function";
    const errorBox = document.getElementById("passkey-error");
    const login = document.getElementById("passkey-login");
    if (login && supported) {
      wire(document.getElementById("passkey-signin"), login, errorBox, () => signIn(login));
    }
    const section = document.getElementById("passkeys");
    if (section) {
      listPasskeys(section);
      const add = document.getElementById("passkey-add");
      if (supported) {
        wire(document.getElementById("passkey-new"), add, errorBox, () => register(section));
      }
    }
  });
})();

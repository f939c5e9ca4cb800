"""An app behind the zerogate gateway that trusts only a verified X-Zerogate-Assertion.

Run: python examples/whoami.py --port 3000 --app whoami \
       --control https://localhost:8443 --ca ~/.zerogate/ca.pem
"""

import argparse
import json
import ssl
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import KeySet

args = argparse.ArgumentParser()
for flag in ("--port", "--app", "--control", "--ca"):
    args.add_argument(flag, required=True)
opts = args.parse_args()
trust = ssl.create_default_context(cafile=opts.ca)
jwks_url = f"{opts.control}/.well-known/jwks.json"
with urllib.request.urlopen(jwks_url, context=trust) as answer:  # noqa: S310 - https, given
    keys = KeySet.import_key_set(json.load(answer))  # refetch when a kid is unknown (rotation)
rules = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": opts.control},
    aud={"essential": True, "value": opts.app},
    exp={"essential": True},
)


class WhoAmI(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            token = jwt.decode(
                self.headers.get("X-Zerogate-Assertion", ""), keys, algorithms=["ES256"]
            )
            rules.validate(token.claims)
        except Exception:  # no assertion, a forged one, another app's, or an expired one
            self.send_error(401, "not through the zerogate gateway")
            return
        body = f"Hello {token.claims['zg_user']} ({', '.join(token.claims['zg_groups'])})\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())


ThreadingHTTPServer(("127.0.0.1", int(opts.port)), WhoAmI).serve_forever()

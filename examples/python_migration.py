#!/usr/bin/env python3
"""Migrating a Python fleet from `microservice_comms` signing to RFC 9421, against a comms service.

A Python caller ("billing") makes the same call twice to a service protected by
`comms::verify::Verifier`:

  1. signed the old way, as `microservice_comms` does (X-Service-ID / X-Timestamp / X-Signature);
  2. signed with RFC 9421 HTTP Message Signatures by `requests-http-signature`, the way comms
     signs by default.

The migration: the service first accepts both (`.accept_legacy(true)`), the Python callers move
to (2), and once no legacy caller is left the service turns legacy off (`.accept_legacy(false)`):
then (1) is refused and (2) still works. Run this against each stage:

    py="$(tests/interop/venv.sh)"      # a venv with requests-http-signature
    "$py" examples/python_migration.py --url http://127.0.0.1:8080 --secret "$BILLING_SECRET" \\
        --expect-legacy accepted        # stage 1: legacy still accepted
    "$py" examples/python_migration.py --url http://127.0.0.1:8080 --secret "$BILLING_SECRET" \\
        --expect-legacy refused         # stage 3: legacy turned off

Settings come from flags or the environment: --url ($COMMS_URL, default http://127.0.0.1:8080),
--service-id ($COMMS_SERVICE_ID, default billing), --key-id (default: the service id),
--secret ($COMMS_SECRET), --legacy-secret ($COMMS_LEGACY_SECRET, default: --secret),
--method/--path (default POST /orders, with a small JSON body).
Exit status: 0 when each call got the expected outcome (accepted = 2xx, refused = 401/403;
--expect-* any = just report), 1 when not or when the service cannot be reached, 2 on bad flags.
"""

import argparse
import hashlib
import hmac
import os
import sys
import time
import urllib.parse

import requests
from requests_http_signature import HTTPSignatureAuth, algorithms


# --- (1) The legacy scheme, as microservice_comms' auth.py signs ------------------------------
def legacy_headers(method, url, service_id, secret, timestamp=None):
    """X-Service-ID, X-Timestamp, X-Signature = hex HMAC-SHA256 of "<METHOD>|<path>|<timestamp>".

    The path is the percent-decoded path without the query: neither the query nor the body is
    signed, which is why this scheme is being retired.
    """
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    to_sign = f"{method.upper()}|{path}|{timestamp}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {"X-Service-ID": service_id, "X-Timestamp": timestamp, "X-Signature": signature,
            "Content-Type": "application/json"}


# --- (2) RFC 9421 with requests-http-signature, set up like a comms signer -------------------
def comms_auth(key_id, secret, *extra_components):
    """Signs method, authority, path, query and the body's Content-Digest (sha-256), plus
    "content-type" for calls with a body and any header the call sets (lower-case names)."""
    return HTTPSignatureAuth(
        signature_algorithm=algorithms.HMAC_SHA256,
        key=secret.encode(),
        key_id=key_id,
        label="comms",
        covered_component_ids=("@method", "@authority", "@path", "@query", "content-digest",
                               *extra_components),
        use_nonce=True,  # a fresh nonce per request: the service refuses a replay
    )


def outcome(status):
    return "accepted" if 200 <= status < 300 else "refused" if status in (401, 403) else f"unexpected {status}"


def main():
    env = os.environ.get
    ap = argparse.ArgumentParser(description="Legacy vs RFC 9421 signing against a comms service.")
    ap.add_argument("--url", default=env("COMMS_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--service-id", default=env("COMMS_SERVICE_ID", "billing"))
    ap.add_argument("--key-id", help="RFC 9421 key id (default: the service id)")
    ap.add_argument("--secret", default=env("COMMS_SECRET"))
    ap.add_argument("--legacy-secret", default=env("COMMS_LEGACY_SECRET"))
    ap.add_argument("--method", default="POST")
    ap.add_argument("--path", default="/orders")
    ap.add_argument("--expect-legacy", choices=["accepted", "refused", "any"], default="any")
    ap.add_argument("--expect-rfc9421", choices=["accepted", "refused", "any"], default="accepted")
    args = ap.parse_args()
    if not args.secret:
        ap.error("a secret is needed: --secret or $COMMS_SECRET")

    url = args.url.rstrip("/") + args.path
    method = args.method.upper()
    body = {"item": "abc", "qty": 2} if method in ("POST", "PUT", "PATCH") else None
    calls = [
        ("legacy", args.expect_legacy,
         dict(headers=legacy_headers(method, url, args.service_id, args.legacy_secret or args.secret))),
        ("rfc9421", args.expect_rfc9421,
         dict(auth=comms_auth(args.key_id or args.service_id, args.secret,
                              *(["content-type"] if body is not None else [])))),
    ]

    failures = 0
    for scheme, expected, signing in calls:
        try:
            resp = requests.request(method, url, json=body, allow_redirects=False, timeout=10, **signing)
        except requests.RequestException as e:
            print(f"{scheme:8} {method} {url}: cannot reach the service: {e}", file=sys.stderr)
            return 1
        got = outcome(resp.status_code)
        ok = expected == "any" or got == expected
        failures += not ok
        verdict = "" if expected == "any" else ("  (as expected)" if ok else f"  EXPECTED {expected}")
        print(f"{scheme:8} {method} {args.path} -> {resp.status_code} {got}{verdict}: {resp.text[:200]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

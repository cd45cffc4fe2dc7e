#!/usr/bin/env python3
"""Verify captured requests the way a Python service would: with `http-message-signatures`.

    verify.py KEY_ID SECRET [--max-skew SECONDS] [--no-age-limit] < requests.json

Reads from stdin a JSON array of captured requests:

    [{"name": "get", "method": "GET", "url": "http://127.0.0.1:8080/users?page=2",
      "headers": [["Host", "127.0.0.1:8080"], ["Content-Digest", "..."], ...],
      "body_b64": "eyJ..."}, ...]

(`body_b64` may be missing, null or "" for an empty body; a `Host` header, when given, is the
authority that is verified, as on the wire, instead of the URL's.)

Prints one JSON line per request, in input order:

    {"name": "get", "ok": true, "error": null, "label": "comms", "keyid": "billing",
     "covered": ["@method", ...], "nonce": "..."}
    {"name": "tampered", "ok": false, "error": "..."}

Each request is checked with `HTTPMessageVerifier` (hmac-sha256, KEY_ID -> SECRET) against the
comms profile (DESIGN.md, "Wire protocol"): the signature must cover "@method" "@authority"
"@path" "@query", and "content-digest" when the body is not empty; `created` within
--max-skew seconds (default 300) either way; a `Content-Digest` with a `sha-256` member that
matches the body whenever the body is not empty or the field is present; a `nonce` of 16 to 128
characters of A-Z a-z 0-9 - _ that was not seen before in this run (replay). Of several
signatures the first whose keyid is KEY_ID is used. A covered field that occurs more than once
is refused.

Exit status: 0 when every request was judged (whatever the verdicts), 2 on bad input.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import re
import sys
import warnings

import http_sf
import requests
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.signatures import SignatureVerifyWarning

REQUIRED = ("@method", "@authority", "@path", "@query")
NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class Refused(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("key_id")
    p.add_argument("secret")
    p.add_argument("--max-skew", type=int, default=300, metavar="SECONDS",
                   help="how far `created` may be from now, either way (default 300, as comms)")
    p.add_argument("--no-age-limit", action="store_true",
                   help="accept any `created` in the past (for fixed vectors); the future bound stays")
    return p.parse_args()


def header_lines(raw):
    """[[name, value], ...] -> list of (name, value) with string names and values."""
    if not isinstance(raw, list):
        raise ValueError("headers must be a list of [name, value] pairs")
    lines = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"bad header entry {pair!r}")
        lines.append((pair[0], pair[1]))
    return lines


def wire_url(url, host):
    """The URL with its authority replaced by the Host header (what the server saw), raw otherwise."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"url must be absolute: {url!r}")
    if host is None:
        return url
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    return f"{scheme}://{host}{rest[end:]}"


def select_label(sig_input, key_id):
    """The label of the first signature whose keyid is ours, and how many there are."""
    try:
        members = http_sf.parse(sig_input.encode(), tltype="dictionary")
    except Exception as e:  # noqa: BLE001 - the library reports every parse error its own way
        raise Refused(f"malformed Signature-Input: {e}") from e
    for label, (_, params) in members.items():
        if params.get("keyid") == key_id:
            return label, len(members)
    raise Refused(f"no signature with a known keyid (known: {key_id!r})")


def check_sha256_digest(value, body):
    try:
        members = http_sf.parse(value.encode(), tltype="dictionary")
    except Exception as e:  # noqa: BLE001
        raise Refused(f"malformed Content-Digest: {e}") from e
    member = members.get("sha-256")
    if member is None or not isinstance(member[0], bytes):
        raise Refused("Content-Digest has no sha-256 member")
    if not hmac.compare_digest(member[0], hashlib.sha256(body).digest()):
        raise Refused("Content-Digest sha-256 does not match the body")


def make_verifier(key_id, secret, max_skew):
    class Verifier(HTTPMessageVerifier):
        # created may be up to max_skew in the future; with max_age=0 also up to max_skew old.
        max_clock_skew = datetime.timedelta(seconds=max_skew)
        # Of several signatures we pick one by its label (chosen by keyid, as comms does).
        allow_label_only_selection = True

    return Verifier(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={key_id: secret.encode()}, private_keys={}),
    )


def verify_one(item, *, key_id, verifier, max_age, seen_nonces):
    method = item["method"]
    lines = header_lines(item.get("headers", []))
    body = base64.b64decode(item.get("body_b64") or "", validate=True)

    counts = {}
    for name, _ in lines:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    # A PreparedRequest holds one value per name: join repeated lines as HTTP does, and refuse
    # below when a repeated field is one the signature covers.
    headers = requests.structures.CaseInsensitiveDict()
    for name, value in lines:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    for name in ("host", "signature-input", "signature", "content-digest"):
        if counts.get(name, 0) > 1:
            raise Refused(f"{name} occurs more than once")
    if "Signature-Input" not in headers or "Signature" not in headers:
        raise Refused("no Signature-Input / Signature")

    label, n_signatures = select_label(headers["Signature-Input"], key_id)

    # The object the library verifies: a requests PreparedRequest, built by hand and never sent,
    # so that the URL, headers and body stay exactly as captured.
    req = requests.PreparedRequest()
    req.method = method
    req.url = wire_url(item["url"], headers.get("Host"))
    req.headers = headers
    req.body = body

    required = REQUIRED + (("content-digest",) if body else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SignatureVerifyWarning)
        try:
            results = verifier.verify(
                req,
                max_age=max_age,
                expect_label=label if n_signatures > 1 else None,
                require_components=required,
                body=body,  # the library checks every Content-Digest member it covers
            )
        except (InvalidSignature, HTTPMessageSignaturesException) as e:
            raise Refused(f"{type(e).__name__}: {e}") from e
    result = results[0]
    # Serialized identifiers ('"@method"', '"content-digest";key="sha-256"'); plain names unquoted.
    covered = [
        c[1:-1] if c.count('"') == 2 and c.endswith('"') else c
        for c in result.covered_components
        if c != '"@signature-params"'
    ]
    for component in covered:
        if counts.get(component, 0) > 1:
            raise Refused(f"covered field {component} occurs more than once")

    if "Content-Digest" in headers or body:
        if "Content-Digest" not in headers:
            raise Refused("no Content-Digest for a non-empty body")
        check_sha256_digest(headers["Content-Digest"], body)

    nonce = result.nonce
    if nonce is None:
        raise Refused("no nonce")
    if not NONCE.fullmatch(nonce):
        raise Refused(f"nonce {nonce!r} is not 16-128 characters of A-Z a-z 0-9 - _")
    if nonce in seen_nonces:
        raise Refused(f"replayed nonce {nonce!r}")
    seen_nonces.add(nonce)
    return {"label": result.label, "keyid": result.parameters.get("keyid"), "covered": covered, "nonce": nonce}


def main():
    args = parse_args()
    try:
        items = json.load(sys.stdin)
        if not isinstance(items, list):
            raise ValueError("stdin must hold a JSON array")
    except ValueError as e:
        print(f"verify.py: bad input: {e}", file=sys.stderr)
        return 2
    verifier = make_verifier(args.key_id, args.secret, args.max_skew)
    max_age = None if args.no_age_limit else datetime.timedelta(0)
    seen_nonces = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
            print(f"verify.py: bad input: item {i} needs string fields method and url", file=sys.stderr)
            return 2
        name = item.get("name", str(i))
        try:
            detail = verify_one(item, key_id=args.key_id, verifier=verifier, max_age=max_age, seen_nonces=seen_nonces)
            line = {"name": name, "ok": True, "error": None, **detail}
        except Refused as e:
            line = {"name": name, "ok": False, "error": str(e)}
        except (ValueError, KeyError, TypeError) as e:
            print(f"verify.py: bad input in item {name!r}: {e!r}", file=sys.stderr)
            return 2
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

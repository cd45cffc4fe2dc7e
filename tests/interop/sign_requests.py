#!/usr/bin/env python3
"""Send real requests signed by `requests-http-signature` to a comms service.

    sign_requests.py URL KEY_ID SECRET [--mode ok|tampered|replay|all] [--timeout S] [-v]

URL is the service's base URL (http://127.0.0.1:PORT, optionally with a path prefix); the
requests go to these paths under it:

    GET  /items?a=1&b=x%20y   POST /items (JSON)   PUT /items/<n> (JSON, X-Request-Id)

Prints one JSON line per request on stdout, in order:

    {"name": "get-query", "status": 200, "expect": "accepted"}

`expect` is what the comms profile says should happen ("accepted": a 2xx; "refused": a 401);
judging is the caller's job. Exit status 0 whenever every request got an HTTP response, refused
or not; 1 on a transport error or any other failure of this script; 2 on bad arguments.

Modes:
  ok        get-query, post-json, put-header: correctly signed, must be accepted.
  tampered  each signed, then changed before sending, must be refused: tampered-body (body
            changed, digest kept), tampered-body-and-digest (body and a matching digest),
            tampered-path, tampered-query, tampered-header (a covered X-Request-Id).
  replay    replay-first, replay-second: one signed prepared GET sent twice; the first must be
            accepted, the second refused.
  all       ok, tampered, replay in that order.
  components  requests covering, beside the profile, components comms clients never cover; the
            verifier must be told the scheme (http) for the first two:
            target-uri (@target-uri @scheme @request-target) and query-param
            ("@query-param";name="b" and name="a"), accepted; field-params ("x-dict";key="b",
            "x-request-id";bs), accepted; then tampered-query-param (b changed), refused;
            tampered-dict-member (member b changed), refused; other-dict-member (member a, not
            covered, changed), accepted.

The signing settings are those of comms_auth() below: the comms profile as far as the library
allows (label comms; @method @authority @path @query content-digest, then content-type and the
headers the call sets; created, keyid, alg="hmac-sha256", nonce).
"""

import argparse
import json
import secrets
import sys

import requests
from http_message_signatures import ContentDigest
from requests_http_signature import HTTPSignatureAuth, algorithms

# Covered by every comms signature, in the profile's order.
COMMS_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")


def comms_auth(key_id, secret, *extra_components):
    """HTTPSignatureAuth for the comms profile.

    extra_components: "content-type" for calls with a body, then the lower-case names of the
    headers the call sets itself (e.g. "x-request-id"), in the order they were set.

    What the library adds on its own (requests_http_signature/__init__.py, 2.0.0): a Date header,
    covered as a last "date" component; a Content-Digest (sha-256, also for an empty body); a
    nonce from secrets.token_urlsafe(16) (22 base64url characters) with use_nonce=True.
    """
    return HTTPSignatureAuth(
        signature_algorithm=algorithms.HMAC_SHA256,
        key=secret.encode("utf-8"),
        key_id=key_id,
        label="comms",
        covered_component_ids=COMMS_COMPONENTS + tuple(extra_components),
        use_nonce=True,
    )


class Sender:
    def __init__(self, base_url, key_id, secret, timeout, verbose):
        self.base = base_url.rstrip("/")
        self.key_id, self.secret = key_id, secret
        self.timeout, self.verbose = timeout, verbose
        self.session = requests.Session()

    def prepare(self, method, path, *extra, **kwargs):
        """A signed PreparedRequest (signing happens in prepare_request, through auth)."""
        req = requests.Request(method, self.base + path, auth=comms_auth(self.key_id, self.secret, *extra), **kwargs)
        return self.session.prepare_request(req)

    def send(self, name, prepared, expect):
        if self.verbose:
            print(f"> {name}: {prepared.method} {prepared.url}", file=sys.stderr)
            for k, v in prepared.headers.items():
                print(f">   {k}: {v}", file=sys.stderr)
        # No redirects: a signature is bound to its target and must not follow one elsewhere.
        resp = self.session.send(prepared, allow_redirects=False, timeout=self.timeout)
        if self.verbose:
            print(f"< {resp.status_code} {resp.text[:200]!r}", file=sys.stderr)
        print(json.dumps({"name": name, "status": resp.status_code, "expect": expect}), flush=True)


def set_body(prepared, body):
    prepared.body = body
    prepared.headers["Content-Length"] = str(len(body))


def mode_ok(s):
    s.send("get-query", s.prepare("GET", "/items?a=1&b=x%20y"), "accepted")
    s.send("post-json", s.prepare("POST", "/items", "content-type", json={"name": "widget", "qty": 2}), "accepted")
    s.send("put-header",
           s.prepare("PUT", "/items/42", "content-type", "x-request-id", json={"name": "gadget", "qty": 3},
                     headers={"X-Request-Id": f"req-{secrets.token_hex(8)}"}),
           "accepted")


def mode_tampered(s):
    # Every request is signed afresh (own nonce) and altered only after signing, so a refusal
    # can only come from the alteration.
    p = s.prepare("POST", "/items", "content-type", json={"name": "widget", "qty": 2})
    set_body(p, b'{"name": "widget", "qty": 2000}')
    s.send("tampered-body", p, "refused")

    # Body and a Content-Digest that matches it: only the signature can tell.
    p = s.prepare("POST", "/items", "content-type", json={"name": "widget", "qty": 2})
    set_body(p, b'{"name": "widget", "qty": 2000}')
    del p.headers["Content-Digest"]
    ContentDigest.add(p.headers, p.body)
    s.send("tampered-body-and-digest", p, "refused")

    p = s.prepare("PUT", "/items/42", "content-type", json={"name": "gadget", "qty": 3})
    p.url = p.url.replace("/items/42", "/items/43")
    s.send("tampered-path", p, "refused")

    p = s.prepare("GET", "/items?a=1&b=x%20y")
    p.url = p.url.replace("?a=1&", "?a=2&")
    s.send("tampered-query", p, "refused")

    p = s.prepare("PUT", "/items/42", "content-type", "x-request-id", json={"name": "gadget", "qty": 3},
                  headers={"X-Request-Id": "req-original"})
    p.headers["X-Request-Id"] = "req-forged"
    s.send("tampered-header", p, "refused")


def mode_replay(s):
    p = s.prepare("GET", "/items?a=1&b=x%20y")
    s.send("replay-first", p, "accepted")
    s.send("replay-second", p, "refused")


def mode_components(s):
    query = "/items?a=1&b=x%20y+z%2B"
    s.send("target-uri", s.prepare("GET", query, "@target-uri", "@scheme", "@request-target"), "accepted")
    s.send("query-param", s.prepare("GET", query, '"@query-param";name="b"', '"@query-param";name="a"'),
           "accepted")
    dict_headers = {"X-Dict": "a=1, b=2;x=?1, c=(x y)", "X-Request-Id": "req-bs"}
    s.send("field-params",
           s.prepare("PUT", "/items/42", "content-type", '"x-dict";key="b"', '"x-request-id";bs',
                     json={"name": "gadget"}, headers=dict_headers),
           "accepted")

    p = s.prepare("GET", query, '"@query-param";name="b"')
    p.url = p.url.replace("b=x%20y+z%2B", "b=x%20y+z%2C")
    s.send("tampered-query-param", p, "refused")

    p = s.prepare("PUT", "/items/42", "content-type", '"x-dict";key="b"', json={"name": "gadget"},
                  headers=dict_headers)
    p.headers["X-Dict"] = "a=1, b=3;x=?1, c=(x y)"
    s.send("tampered-dict-member", p, "refused")

    p = s.prepare("PUT", "/items/42", "content-type", '"x-dict";key="b"', json={"name": "gadget"},
                  headers=dict_headers)
    p.headers["X-Dict"] = "a=9, b=2;x=?1, c=(x y)"
    s.send("other-dict-member", p, "accepted")


MODES = {"ok": [mode_ok], "tampered": [mode_tampered], "replay": [mode_replay],
         "all": [mode_ok, mode_tampered, mode_replay], "components": [mode_components]}


def main():
    ap = argparse.ArgumentParser(description="Send requests signed by requests-http-signature (comms profile).")
    ap.add_argument("url", help="base URL of the service, e.g. http://127.0.0.1:8080")
    ap.add_argument("key_id")
    ap.add_argument("secret")
    ap.add_argument("--mode", choices=sorted(MODES), default="ok")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print requests and responses on stderr")
    args = ap.parse_args()
    sender = Sender(args.url, args.key_id, args.secret, args.timeout, args.verbose)
    try:
        for run in MODES[args.mode]:
            run(sender)
    except requests.RequestException as e:
        print(f"sign_requests.py: request failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

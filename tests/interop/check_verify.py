#!/usr/bin/env python3
"""Self-test of verify.py: the RFC 9421 vectors, altered copies of them, and fresh signatures.

    check_verify.py [VECTORS]        (default: tests/vectors/rfc9421.json)

Builds captured requests in verify.py's input format from each vector (URL and Host from its
authority, its headers and body, and its Content-Digest, Signature-Input and Signature), runs
verify.py once per key id, and checks every verdict: each vector accepted once, its duplicate
refused as a replay, each altered copy refused. Then signs requests now with
http-message-signatures (some off-profile) and checks verify.py's verdicts on those with the
default 300 s skew window. Prints one line per case and 'N passed, N failed'; exits 1 on any
failure.
"""

import base64
import copy
import datetime
import json
import os
import subprocess
import sys

import requests
from http_message_signatures import ContentDigest, HTTPMessageSigner, MappingKeyResolver, algorithms

HERE = os.path.dirname(os.path.abspath(__file__))
VERIFY = os.path.join(HERE, "verify.py")
DEFAULT_VECTORS = os.path.join(HERE, "..", "vectors", "rfc9421.json")


def captured(name, method, url, headers, body):
    return {"name": name, "method": method, "url": url, "headers": [list(h) for h in headers],
            "body_b64": base64.b64encode(body).decode()}


def from_vector(v):
    query = f"?{v['query']}" if v["query"] else ""
    headers = [("Host", v["authority"]), *map(tuple, v["headers"]),
               ("Content-Digest", v["content_digest"]),
               ("Signature-Input", v["signature_input"]), ("Signature", v["signature"])]
    return captured(v["name"], v["method"], f"http://{v['authority']}{v['path']}{query}", headers,
                    v["body"].encode())


def set_header(item, name, value):
    item["headers"] = [[n, value if n.lower() == name.lower() else v] for n, v in item["headers"]]


def altered(item, name, change):
    item = copy.deepcopy(item)
    item["name"] = name
    change(item)
    return item


def run_verify(key_id, secret, items, *extra):
    out = subprocess.run([sys.executable, VERIFY, key_id, secret, *extra], input=json.dumps(items),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"verify.py exited {out.returncode}: {out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines()]


class Sha512Digest(ContentDigest):
    algorithm = "sha-512"


def sign_now(name, method, url, *, headers=(), body=b"", covered=("@method", "@authority", "@path", "@query"),
             nonce="nonce-of-22-chars-ok__", created=None, key_id="billing", secret="s3cret-billing",
             digest=ContentDigest):
    """A request signed by http-message-signatures itself, with the digest it generates."""
    req = requests.Request(method, url, headers=dict(headers), data=body or None).prepare()

    class Signer(HTTPMessageSigner):
        content_digest_class = digest

    signer = Signer(signature_algorithm=algorithms.HMAC_SHA256,
                               key_resolver=MappingKeyResolver(private_keys={key_id: secret.encode()}, public_keys={}))
    signer.sign(req, key_id=key_id, created=created, nonce=nonce, label="comms",
                covered_component_ids=covered, body=body)  # body= adds and covers Content-Digest
    host = url.split("://", 1)[1].split("/", 1)[0]
    return captured(name, method, req.url, [("Host", host), *req.headers.items()], body)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VECTORS
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)

    expectations = []  # (key_id, secret, extra_args, items, {name: expected ok})
    by_key = {}
    for v in vectors:
        by_key.setdefault((v["key_id"], v["secret"]), []).append(v)
    for (key_id, secret), vs in by_key.items():
        items, expected = [], {}
        for v in vs:
            item = from_vector(v)
            items.append(item)
            expected[item["name"]] = True
            # Altered copies (each with a fresh name) must be refused; they come before the
            # replay check below, and a refused request records no nonce.
            cases = {
                "body changed": lambda it: it.update(body_b64=base64.b64encode(b'{"x":1}').decode()),
                "path changed": lambda it: it.update(url=f"http://{v['authority']}{v['path']}x" + (f"?{v['query']}" if v["query"] else "")),
                "query changed": lambda it: it.update(url=it["url"].split("?")[0] + "?page=3"),
                "authority changed": lambda it: set_header(it, "Host", "evil.internal"),
                "method changed": lambda it: it.update(method="DELETE"),
                "signature-input changed": lambda it: set_header(
                    it, "Signature-Input", v["signature_input"].replace(f'created={v["created"]}', f'created={v["created"] + 1}')),
            }
            if v["body"]:
                cases["body and digest changed"] = lambda it: (
                    it.update(body_b64=base64.b64encode(b"{}").decode()),
                    set_header(it, "Content-Digest", ContentDigest.create(b"{}")))
                cases["content-digest removed"] = lambda it: it.update(
                    headers=[h for h in it["headers"] if h[0].lower() != "content-digest"])
            for h, _ in v["headers"]:
                cases[f"{h.lower()} changed"] = lambda it, h=h: set_header(it, h, "changed")
                cases[f"{h.lower()} twice"] = lambda it, h=h: it["headers"].append([h, "again"])
            for case, change in cases.items():
                name = f"{v['name']}: {case}"
                items.insert(len(items) - 1, altered(item, name, change))
                expected[name] = False
        for v in vs:
            dup = from_vector(v)
            dup["name"] = f"{v['name']}: replayed"
            items.append(dup)
            expected[dup["name"]] = False
        expectations.append((key_id, secret, ["--no-age-limit"], items, expected))
        # The right key id with the wrong secret, and an unknown key id.
        expectations.append((key_id, "wrong", ["--no-age-limit"], [from_vector(vs[0])], {vs[0]["name"]: False}))
        expectations.append(("nobody", secret, ["--no-age-limit"], [from_vector(vs[0])], {vs[0]["name"]: False}))
    # Two signatures, the first by a key we do not know: the one with our keyid is used.
    v0 = vectors[0]
    two = from_vector(v0)
    two["name"] = f"{v0['name']}: after another signature"
    set_header(two, "Signature-Input", 'other=("@method");created=1;keyid="someone-else", ' + v0["signature_input"])
    set_header(two, "Signature", "other=:AAAA:, " + v0["signature"])
    expectations.append((v0["key_id"], v0["secret"], ["--no-age-limit"], [two], {two["name"]: True}))
    # Without --no-age-limit the vectors' fixed `created` is far outside the 300 s window.
    expectations.append((vectors[0]["key_id"], vectors[0]["secret"], [], [from_vector(vectors[0])],
                         {vectors[0]["name"]: False}))

    now = datetime.datetime.now(datetime.timezone.utc)
    base = "http://127.0.0.1:8080"
    fresh = [
        (sign_now("fresh get", "GET", f"{base}/users?a=1&b=x%20y", covered=("@method", "@authority", "@path", "@query", "content-digest")), True),
        (sign_now("fresh post", "POST", f"{base}/users", headers=[("Content-Type", "application/json")],
                  body=b'{"a":1}', covered=("@method", "@authority", "@path", "@query", "content-type"), nonce="n" * 32), True),
        (sign_now("empty body, digest not covered", "GET", f"{base}/x", nonce="A" * 128), True),
        (sign_now("no @query", "GET", f"{base}/x?a=1", covered=("@method", "@authority", "@path"), nonce="B" * 16), False),
        (sign_now("no @authority", "GET", f"{base}/x", covered=("@method", "@path", "@query"), nonce="C" * 16), False),
        (sign_now("no nonce", "GET", f"{base}/x", nonce=None), False),
        (sign_now("nonce too short", "GET", f"{base}/x", nonce="D" * 15), False),
        (sign_now("nonce with a dot", "GET", f"{base}/x", nonce="E" * 16 + "."), False),
        (sign_now("created 310 s ago", "GET", f"{base}/x", nonce="F" * 16, created=now - datetime.timedelta(seconds=310)), False),
        (sign_now("created 290 s ago", "GET", f"{base}/x", nonce="G" * 16, created=now - datetime.timedelta(seconds=290)), True),
        (sign_now("created 310 s ahead", "GET", f"{base}/x", nonce="H" * 16, created=now + datetime.timedelta(seconds=310)), False),
        (sign_now("created 290 s ahead", "GET", f"{base}/x", nonce="I" * 16, created=now + datetime.timedelta(seconds=290)), True),
    ]
    # A sha-512-only Content-Digest: the library accepts it, the comms profile (and verify.py)
    # require a sha-256 member.
    fresh.append((sign_now("sha-512 digest only", "POST", f"{base}/x", body=b"abc", nonce="J" * 16,
                           covered=("@method", "@authority", "@path", "@query", "content-digest"),
                           digest=Sha512Digest), False))
    expectations.append(("billing", "s3cret-billing", [], [f for f, _ in fresh], {f["name"]: ok for f, ok in fresh}))

    passed = failed = 0
    for key_id, secret, extra, items, expected in expectations:
        verdicts = run_verify(key_id, secret, items, *extra)
        assert [v["name"] for v in verdicts] == [i["name"] for i in items], "verify.py lost or reordered requests"
        for verdict in verdicts:
            good = verdict["ok"] == expected[verdict["name"]]
            passed, failed = passed + good, failed + (not good)
            mark = "ok  " if good else "FAIL"
            what = "accepted" if verdict["ok"] else f"refused: {verdict['error']}"
            print(f"{mark} [{key_id}/{'wrong secret' if secret == 'wrong' else 'secret'}{' ' + ' '.join(extra) if extra else ''}] "
                  f"{verdict['name']}: {what}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

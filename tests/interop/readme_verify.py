#!/usr/bin/env python3
"""Verifies captured comms requests with the recipe README ("Migrating a Python fleet") gives a
Python service: requests-http-signature's `HTTPSignatureAuth.verify` with the comms profile's
required components and 300 s age, then the nonce, refused when seen before.

    readme_verify.py KEY_ID SECRET < requests.json   (the format of verify.py)

Prints one JSON line per request: {"name", "ok", "error", "created"}. The requests of one run
share one store of nonces seen, as a service's do."""
import base64
import json
import re
import sys
from datetime import timedelta

import requests
from http_message_signatures import MappingKeyResolver
from requests_http_signature import HTTPSignatureAuth, algorithms

# --- the README's recipe, as written there ---
NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")


def verify_comms(request, key_id, secret, seen):
    result = HTTPSignatureAuth.verify(
        request,
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={key_id: secret}, private_keys={}),
        require_components=("@method", "@authority", "@path", "@query", "content-digest"),
        max_age=timedelta(seconds=300),
    )
    nonce = result.parameters.get("nonce")
    if not nonce or not NONCE.fullmatch(nonce) or nonce in seen:
        raise ValueError("a nonce missing, malformed or seen before: a replay")
    seen.add(nonce)  # across replicas, a store they share: Redis `SET <nonce> 1 NX EX 600`
    return result
# --- end of the recipe ---


key_id, secret = sys.argv[1], sys.argv[2]
seen = set()
for item in json.load(sys.stdin):
    req = requests.PreparedRequest()
    req.method = item["method"]
    req.url = item["url"]
    req.headers = requests.structures.CaseInsensitiveDict(item["headers"])
    req.body = base64.b64decode(item.get("body_b64") or "")
    try:
        result = verify_comms(req, key_id, secret.encode(), seen)
        print(json.dumps({"name": item["name"], "ok": True, "error": None,
                          "created": result.parameters.get("created")}), flush=True)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"name": item["name"], "ok": False,
                          "error": f"{type(e).__name__}: {e}"}), flush=True)

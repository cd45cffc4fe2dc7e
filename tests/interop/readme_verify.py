#!/usr/bin/env python3
"""Verifies captured comms requests exactly as README ("Migrating a Python fleet") tells a Python
service to with requests-http-signature: HTTPSignatureAuth.verify with
require_components=("@method", "@authority", "@path", "@query") and nothing else.

    readme_verify.py KEY_ID SECRET < requests.json   (the format of verify.py)

Prints one JSON line per request: {"name", "ok", "error", "created"}."""
import base64, json, sys
import requests
from http_message_signatures import MappingKeyResolver
from requests_http_signature import HTTPSignatureAuth, algorithms

key_id, secret = sys.argv[1], sys.argv[2]
for item in json.load(sys.stdin):
    req = requests.PreparedRequest()
    req.method = item["method"]
    req.url = item["url"]
    req.headers = requests.structures.CaseInsensitiveDict(item["headers"])
    req.body = base64.b64decode(item.get("body_b64") or "")
    try:
        result = HTTPSignatureAuth.verify(
            req,
            require_components=("@method", "@authority", "@path", "@query"),
            signature_algorithm=algorithms.HMAC_SHA256,
            key_resolver=MappingKeyResolver(public_keys={key_id: secret.encode()}, private_keys={}),
        )
        print(json.dumps({"name": item["name"], "ok": True, "error": None,
                          "created": result.parameters.get("created")}), flush=True)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"name": item["name"], "ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)

#!/usr/bin/env python3
"""Writes tests/api/fixtures/legacy_hashes.json: password hashes made by the libraries the
Flask and FastAPI generations used (Werkzeug pbkdf2 and scrypt, bcrypt), for the import and
rehash tests. Run once with `pip install werkzeug bcrypt`; the output is committed."""
import json
import bcrypt
from werkzeug.security import generate_password_hash

PASSWORDS = ["testpass", "SecurePassword123!", "secretpassword123", "pässwörd-ünïcode"]
out = []
for pw in PASSWORDS:
    for method in ["pbkdf2:sha256:600000", "pbkdf2:sha512:25000", "scrypt:32768:8:1", "scrypt:16384:8:1"]:
        out.append({"password": pw, "scheme": method.split(":")[0], "hash": generate_password_hash(pw, method=method)})
    b = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()
    out.append({"password": pw, "scheme": "bcrypt", "hash": b})
    out.append({"password": pw, "scheme": "bcrypt", "hash": bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5, prefix=b"2a")).decode()})
    # PHP/passlib's $2y$ is the same algorithm as $2b$ under another name.
    out.append({"password": pw, "scheme": "bcrypt", "hash": "$2y$" + b[4:]})
json.dump(out, open("tests/api/fixtures/legacy_hashes.json", "w"), indent=1, ensure_ascii=False)
print(f"wrote {len(out)} hashes")

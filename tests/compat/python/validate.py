"""Checks the tokens of the matrix rows (a JSON list on stdin) with PyJWT against the JWKS that
the emulator at argv[1] names in its OpenID configuration, and prints the rows with each token
replaced by its checked claims (`aud`, `oid`, `appid`, `kid`) or the reason it failed. No token
is printed.
"""

import json
import sys
import urllib.request

import jwt

base = sys.argv[1]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
config = json.load(opener.open(base + "/.well-known/openid-configuration"))
jwks = jwt.PyJWKClient(config["jwks_uri"])

rows = json.load(sys.stdin)
for r in rows:
    token = r.pop("token", None)
    if not token:
        continue
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=r["resource"],
                            issuer=config["issuer"])
        r["claims"] = {"aud": claims["aud"], "oid": claims["oid"], "appid": claims["appid"],
                       "kid": key.key_id}
    except Exception as e:
        r["jwt_error"] = f"{type(e).__name__}: {e}"
json.dump(rows, sys.stdout)

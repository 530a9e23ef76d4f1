#!/usr/bin/env bash
# Trust material for a tlog instance, from its public key:
#   - a sigstore trusted root (trusted_root.json) for cosign --trusted-root and
#     other sigstore clients, with the log as its only tlogs[] entry;
#   - a policy-controller TrustRoot (trustroot.yaml) naming the log.
#
# Usage: scripts/trust-root.sh URL OUT_DIR [PUBLIC_KEY_PEM] [CA_CERT_PEM]
#   URL             the log's public base URL, e.g. https://rekor.example.com
#   PUBLIC_KEY_PEM  the log's key; fetched from URL/api/v1/log/publicKey if omitted
#   CA_CERT_PEM     a CA for the TrustRoot. policy-controller's webhook refuses
#                   sigstoreKeys without a CA or TSA; when you sign with keys
#                   only, omit it and a throwaway self-signed CA (its private key
#                   discarded, so it can vouch for nothing) fills the slot.
# Env: TLOG_TRUST_ROOT_NAME (default tlog-trust-root); TLOG_VALID_FROM (RFC 3339):
#      the start of the key's validity in trusted_root.json. Clients refuse
#      entries integrated before it, so the default is the integration time of
#      the log's entry 0 (or now, for an empty or unreachable log).
set -euo pipefail

die() { echo "trust-root: $*" >&2; exit 2; }
for tool in openssl python3 base64; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ $# -ge 2 ]] || die "usage: $0 URL OUT_DIR [PUBLIC_KEY_PEM] [CA_CERT_PEM]"
url=${1%/}
out=$2
key=${3:-}
ca=${4:-}
name=${TLOG_TRUST_ROOT_NAME:-tlog-trust-root}
valid_from=${TLOG_VALID_FROM:-}
if [[ -z $valid_from ]] && command -v curl >/dev/null &&
  first=$(curl -fsS "$url/api/v1/log/entries?logIndex=0" 2>/dev/null); then
  valid_from=$(python3 -c 'import json, sys, datetime
(e,) = json.loads(sys.argv[1]).values()
print(datetime.datetime.fromtimestamp(e["integratedTime"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))' "$first")
fi
if [[ -z $valid_from ]]; then
  valid_from=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  echo "trust-root: no entry 0 at $url; the key is valid from now ($valid_from); set TLOG_VALID_FROM to change it" >&2
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -z $key ]]; then
  command -v curl >/dev/null || die "curl is required to fetch the public key"
  curl -fsS "$url/api/v1/log/publicKey" -o "$tmp/tlog.pub" || die "cannot fetch $url/api/v1/log/publicKey"
  key=$tmp/tlog.pub
fi
openssl pkey -pubin -in "$key" -outform DER -out "$tmp/key.der" 2>/dev/null || die "$key is not a PEM public key"
cp "$key" "$out/tlog.pub"

if [[ -z $ca ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout /dev/null -out "$tmp/ca.pem" -days 3650 \
    -subj "/O=tlog/CN=tlog placeholder CA (no keyless signing)" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  ca=$tmp/ca.pem
fi
openssl x509 -in "$ca" -noout 2>/dev/null || die "$ca is not a PEM certificate"
key_text=$(openssl pkey -pubin -in "$key" -noout -text 2>/dev/null)

URL=$url OUT=$out NAME=$name VALID_FROM=$valid_from KEY=$key CA=$ca KEY_DER=$tmp/key.der KEY_TEXT=$key_text python3 - <<'EOF'
import base64, hashlib, json, os, subprocess

url, out, name = os.environ["URL"], os.environ["OUT"], os.environ["NAME"]
der = open(os.environ["KEY_DER"], "rb").read()
text = os.environ["KEY_TEXT"]
if "prime256v1" in text or "P-256" in text:
    details = "PKIX_ECDSA_P256_SHA_256"
elif "secp384r1" in text or "P-384" in text:
    details = "PKIX_ECDSA_P384_SHA_384"
elif "ED25519" in text.upper():
    details = "PKIX_ED25519"
else:
    raise SystemExit("trust-root: unsupported log key type")
b64 = lambda b: base64.b64encode(b).decode()
trusted_root = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [{
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": b64(der), "keyDetails": details, "validFor": {"start": os.environ["VALID_FROM"]}},
        "logId": {"keyId": b64(hashlib.sha256(der).digest())},
    }],
    "certificateAuthorities": [],
    "ctlogs": [],
    "timestampAuthorities": [],
}
with open(os.path.join(out, "trusted_root.json"), "w") as f:
    json.dump(trusted_root, f, indent=2)
    f.write("\n")

ca_pem = open(os.environ["CA"], "rb").read()
subj = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "sep_multiline,utf8"],
                      input=ca_pem, capture_output=True, check=True).stdout.decode()
fields = dict(l.strip().split("=", 1) for l in subj.splitlines()[1:] if "=" in l)
fields = {k.strip(): v.strip() for k, v in fields.items()}
trustroot = f"""# policy-controller TrustRoot for the tlog at {url}.
# Made by scripts/trust-root.sh; publicKey and certChain are base64 of PEM.
# yamllint disable rule:line-length
apiVersion: policy.sigstore.dev/v1alpha1
kind: TrustRoot
metadata:
  name: {name}
spec:
  sigstoreKeys:
    # The webhook requires a CA or TSA entry even for key-based signing.
    certificateAuthorities:
      - subject:
          organization: {json.dumps(fields.get("O", "tlog"))}
          commonName: {json.dumps(fields.get("CN", "tlog CA"))}
        uri: {json.dumps(url)}
        certChain: {b64(ca_pem)}
    tLogs:
      - baseURL: {json.dumps(url)}
        hashAlgorithm: sha-256
        publicKey: {b64(open(os.environ["KEY"], "rb").read())}
"""
with open(os.path.join(out, "trustroot.yaml"), "w") as f:
    f.write(trustroot)
print(f"trust-root: wrote {out}/trusted_root.json, {out}/trustroot.yaml, {out}/tlog.pub (logID {b64(hashlib.sha256(der).digest())})")
EOF

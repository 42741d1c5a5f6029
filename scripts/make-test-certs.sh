#!/bin/sh
# Makes the TLS fixtures of the deploy tests with the openssl CLI: a root CA, an intermediate,
# leaves for several names (RSA and ECDSA), an expired and a not-yet-valid leaf, a key that
# matches nothing, a weak leaf that nginx -t refuses, broken PEM files, and leaf+chain bundles;
# and for mutual TLS, client certificates under roots of their own (client-ca, client-other-ca),
# one of them revoked by client-ca.crl (ssl_crl); a-rsa.key encrypted under two passphrases
# (ssl_password_file); and DH parameters (ssl_dhparam).
#
#   scripts/make-test-certs.sh [OUTDIR]     default: test/fixtures/tls
#
# The output is committed, so that tests do not need openssl; rerun this script to remake it
# (the leaves are valid for ten years from the day it runs). Private keys here are test fixtures
# for loopback servers only.
set -eu

out=${1:-$(dirname "$0")/../test/fixtures/tls}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ca.cnf" <<'EOF'
[ca]
default_ca = local
[local]
dir = WORK
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
sed -i "s|WORK|$work|" "$work/ca.cnf"
mkdir "$work/issued"

# ca SIGNER_NAME SUBJECT_NAME START END EXTFILE|- : issues $work/SUBJECT.csr with signer's key.
issue() {
  signer=$1 name=$2 start=$3 end=$4 ext=$5
  : >"$work/index.txt"
  openssl rand -hex 16 >"$work/serial"
  openssl ca -batch -notext -config "$work/ca.cnf" -cert "$out/$signer.crt" -keyfile "$work/$signer.key" \
    -startdate "$start" -enddate "$end" -extfile "$ext" \
    -in "$work/$name.csr" -out "$out/$name.crt" 2>/dev/null
}

# leaf_ext FILE DNSNAMES... : extensions of a server certificate for those names.
leaf_ext() {
  file=$1
  shift
  sans=''
  for n in "$@"; do sans="${sans:+$sans, }DNS:$n"; done
  cat >"$file" <<EOF
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $sans
EOF
}

now=$(date -u +%Y%m%d%H%M%SZ)
ten_years=$(date -u -d '+10 years' +%Y%m%d%H%M%SZ)
twenty_years=$(date -u -d '+20 years' +%Y%m%d%H%M%SZ)

# The roots: the one the tests trust, and another that nothing trusts.
for root in ca other-ca; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$root.key"
  openssl req -new -x509 -config "$work/ca.cnf" -extensions v3_ca -key "$work/$root.key" \
    -subj "/CN=hitless test $root" -days 9000 -out "$out/$root.crt"
done

# Intermediates under each root.
printf 'basicConstraints = critical, CA:true, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' >"$work/int.ext"
for pair in ca:intermediate other-ca:other-intermediate; do
  root=${pair%%:*} int=${pair#*:}
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$int.key"
  openssl req -new -key "$work/$int.key" -subj "/CN=hitless test $int" -out "$work/$int.csr"
  issue "$root" "$int" "$now" "$twenty_years" "$work/int.ext"
done

# leaf NAME ALGORITHM SIGNER START END DNSNAMES...
leaf() {
  name=$1 alg=$2 signer=$3 start=$4 end=$5
  shift 5
  case $alg in
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/$name.key" 2>/dev/null ;;
    rsa512) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512 -out "$out/$name.key" 2>/dev/null ;;
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key" ;;
  esac
  openssl req -new -key "$out/$name.key" -subj "/CN=$1" -out "$work/$name.csr"
  leaf_ext "$work/$name.ext" "$@"
  issue "$signer" "$name" "$start" "$end" "$work/$name.ext"
  cat "$out/$name.crt" "$out/$signer.crt" >"$out/$name.fullchain.crt"
}

leaf a-rsa rsa intermediate "$now" "$ten_years" a.test www.a.test
leaf a-rsa-2 rsa intermediate "$now" "$ten_years" a.test www.a.test
leaf a-ec ec intermediate "$now" "$ten_years" a.test www.a.test
leaf b-rsa rsa intermediate "$now" "$ten_years" b.test
leaf b-ec ec intermediate "$now" "$ten_years" b.test
leaf wildcard-ec ec intermediate "$now" "$ten_years" '*.w.test' w.test
leaf a-expired ec intermediate 20200101000000Z 20210101000000Z a.test
leaf a-not-yet ec intermediate 20900101000000Z 20910101000000Z a.test
leaf a-other-ca ec other-intermediate "$now" "$ten_years" a.test
# nginx (OpenSSL security level 1 or more) refuses a 512-bit RSA key; node:crypto reads it.
leaf a-weak rsa512 intermediate "$now" "$ten_years" a.test

cp "$out/intermediate.crt" "$out/chain.crt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/mismatched.key"

# Broken PEM: a certificate and a key whose base64 bodies were damaged in the middle.
sed '5s/./#/4' "$out/a-rsa.crt" >"$out/broken.crt"
sed '3s/./#/10' "$out/a-ec.key" >"$out/broken.key"

# Client certificates (ssl_verify_client): a root with an intermediate, and a root nothing trusts.
# Their subjects have several attributes so that the RFC 2253 order of $ssl_client_s_dn shows.
for root in client-ca client-other-ca; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$root.key"
  openssl req -new -x509 -config "$work/ca.cnf" -extensions v3_ca -key "$work/$root.key" \
    -subj "/O=hitless/CN=hitless test $root" -days 9000 -out "$out/$root.crt"
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/client-intermediate.key"
openssl req -new -key "$work/client-intermediate.key" -subj "/CN=hitless test client-intermediate" -out "$work/client-intermediate.csr"
issue client-ca client-intermediate "$now" "$twenty_years" "$work/int.ext"
printf 'basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' >"$work/client.ext"
# client NAME SIGNER : an ECDSA client certificate; NAME.fullchain.crt adds the signer when it is an intermediate.
client() {
  name=$1 signer=$2
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "/C=US/O=hitless, Inc./OU=clients/CN=$name" -out "$work/$name.csr"
  issue "$signer" "$name" "$now" "$ten_years" "$work/client.ext"
  cat "$out/$name.crt" "$out/$signer.crt" >"$out/$name.fullchain.crt"
}
client client-a client-ca
client client-via-intermediate client-intermediate
client client-foreign client-other-ca
client client-revoked client-ca
cat "$out/client-ca.crt" "$out/client-intermediate.crt" >"$out/client-ca-bundle.crt"

# ssl_crl: client-ca's CRL revoking client-revoked (and nothing else); valid for ten years.
: >"$work/index.txt"
openssl ca -batch -config "$work/ca.cnf" -cert "$out/client-ca.crt" -keyfile "$work/client-ca.key" \
  -revoke "$out/client-revoked.crt" -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config "$work/ca.cnf" -cert "$out/client-ca.crt" -keyfile "$work/client-ca.key" \
  -gencrl -crldays 3650 -out "$out/client-ca.crl" 2>/dev/null

# ssl_password_file: a-rsa.key as encrypted PKCS#8 (the passphrase is "second secret"), and a
# file of passphrases that tries a wrong one first; and the traditional (PEM DEK-Info) form.
openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$out/a-rsa.key" -passout 'pass:second secret' -out "$out/a-rsa.encrypted.key"
openssl rsa -aes128 -in "$out/a-rsa.key" -passout 'pass:second secret' -traditional -out "$out/a-rsa.encrypted-traditional.key" 2>/dev/null
printf 'first wrong\r\n\nsecond secret\n' >"$out/a-rsa.passwords"
printf 'nope\n' >"$out/wrong.passwords"

# ssl_dhparam: the RFC 7919 ffdhe2048 group, in the PEM "DH PARAMETERS" form openssl dhparam writes.
openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$out/dhparam.pem"

rm -f "$out"/*.csr
chmod 0644 "$out"/*
echo "made $(ls "$out" | wc -l) files in $out"

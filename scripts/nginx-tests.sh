#!/usr/bin/env bash
# scripts/nginx-tests.sh [options] NGINX_TESTS_DIR [FILE.t...]
#
# Runs nginx's own test suite (a checkout of github.com/nginx/nginx-tests, which is not vendored:
# its path is the first argument) against bin/hitless, and writes docs/conformance.md: every file
# in scope, pass / fail / skipped, subtests, and why each one not passing does not pass. The
# selection rule, the options and the report are in scripts/nginx-tests.js (--help).
#
# Needs perl and prove (Debian: perl, with IO::Socket::SSL for the TLS files) and a built hitless.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h | --help) exec node scripts/nginx-tests.js --help ;;
esac
for tool in perl prove node; do
  command -v "$tool" >/dev/null || { echo "nginx-tests: \"$tool\" not found" >&2; exit 2; }
done
[ -f build/src/cli/main.js ] || { echo "nginx-tests: hitless is not built: run \"npm run build\" first" >&2; exit 2; }

NGINX_TESTS_COMMAND="$*" exec node scripts/nginx-tests.js "$@"

#!/bin/sh
# The tiny preview's "dev server": report phases like a template does, then serve a page with busybox httpd.
# TINY_INSTALL_S / TINY_COMPILE_S stretch the phases; TINY_FAIL makes it fail with that reason.
set -eu
phase() { echo "$1" > "${DRAPE_PHASE_FILE:-/drape/phase}"; }
trap 'exit 0' TERM INT
phase installing
sleep "${TINY_INSTALL_S:-0}"
phase compiling
sleep "${TINY_COMPILE_S:-0}"
if [ -n "${TINY_FAIL:-}" ]; then
  phase "failed: ${TINY_FAIL}"
  exit 1
fi
mkdir -p /tmp/www
echo "preview of ${DRAPE_WORKSPACE:-?}" > /tmp/www/index.html
busybox httpd -f -p "${PORT:-3000}" -h /tmp/www &
wait $!

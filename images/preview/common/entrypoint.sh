#!/bin/sh
# The preview template's entrypoint: fetch the project, install its dependencies, start the dev server.
# Contract with the runtime (drape_fleet.runtime.spec): report the phase in $DRAPE_PHASE_FILE (installing,
# compiling, "failed: why"); serve HTTP on $PORT on all interfaces; the runtime calls it ready when HTTP answers.
set -eu
PHASE_FILE="${DRAPE_PHASE_FILE:-/drape/phase}"
phase() { echo "$1" > "$PHASE_FILE"; }
die() { phase "failed: $1"; echo "drape-preview: $1" >&2; exit 1; }

phase installing
if [ -n "${DRAPE_REPO:-}" ]; then
  APP=/workspace/app
  set -- --depth 1 --filter=blob:none
  [ -n "${DRAPE_REF:-}" ] && set -- "$@" --branch "$DRAPE_REF"
  git clone --quiet "$@" -- "$DRAPE_REPO" "$APP" || die "git clone of $DRAPE_REPO failed"
  cd "$APP"
  # The shared store is read-only (one tenant must not change what another reads): try it offline first, with
  # copies instead of hard links; anything it lacks comes from the registry into this preview's own store.
  if ! pnpm install --offline --store-dir "${DRAPE_PNPM_STORE:-/pnpm-store}" --package-import-method copy \
       >/tmp/pnpm-offline.log 2>&1; then
    pnpm install --prefer-offline --store-dir "$HOME/.pnpm-store" || die "pnpm install exited with $?"
  fi
else
  # No repository: the template's starter project, dependencies installed in the image.
  cd /opt/drape/starter
fi

phase compiling
exec pnpm run dev

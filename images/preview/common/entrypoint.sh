#!/bin/sh
# The preview template's entrypoint: fetch the user's project, then hand over to the supervisor (preview.mjs),
# which installs its dependencies, starts its dev server where the preview expects it and reports readiness.
#
# Contract with the runtime (drape_fleet.runtime):
# - the phase is the LAST line of $DRAPE_PHASE_FILE, replaced atomically: installing, compiling, ready, or
#   "failed: <why>"; lines before it are details for people (the install path taken, a log's last lines);
# - HTTP on $PORT, on all interfaces, whatever the project's own configuration says;
# - $DRAPE_REPO (https://...) and optional $DRAPE_REF (branch, tag or commit) name the project; without them the
#   template's own starter runs. The token, if any, is NOT in the environment: the runtime writes it to the file
#   $DRAPE_REPO_TOKEN_FILE (mode 0400, uid 1000) through the archive API before the container starts, with an
#   optional extra CA for a private git server in $DRAPE_GIT_CA_FILE (default /drape/git-ca.pem). It is read by
#   a credential helper (git-credential.sh: never in argv, env or .git/config) and deleted before any of the
#   project's code runs;
# - the project lives in $DRAPE_WORKDIR/app; a directory kept from an earlier preview of the workspace is
#   updated in place (fetch + checkout), so its node_modules and framework caches survive.
set -eu
umask 022

PHASE_FILE="${DRAPE_PHASE_FILE:-/drape/phase}"
TOKEN_FILE="${DRAPE_REPO_TOKEN_FILE:-}"
GIT_CA_FILE="${DRAPE_GIT_CA_FILE:-/drape/git-ca.pem}"
WORKDIR="${DRAPE_WORKDIR:-/workspace}"
APP="$WORKDIR/app"
STATE="$WORKDIR/.drape"
CLONE_TIMEOUT_S="${DRAPE_CLONE_TIMEOUT_S:-300}"
DRAPE_STARTED_AT_MS="$(date +%s%3N)"
export DRAPE_PHASE_FILE="$PHASE_FILE" DRAPE_WORKDIR="$WORKDIR" DRAPE_STARTED_AT_MS

# phase PHASE [LOG]: the last lines of LOG (if given) as details, the phase last; written to a temporary file
# and renamed into place, so a reader never sees half of it.
phase() {
  { if [ -n "${2:-}" ] && [ -s "$2" ]; then tail -n 12 "$2" | cut -c1-200 | tr -d '\r'; fi
    printf '%s\n' "$1" | tr -d '\r' | head -n 1; } > "$PHASE_FILE.tmp"
  mv -f "$PHASE_FILE.tmp" "$PHASE_FILE"
}
# fail WHY [LOG]: report a failure a user understands (with the log's last lines) and stop.
fail() {
  phase "failed: $1" "${2:-}"
  echo "drape-preview: $1" >&2
  exit 1
}
forget_credentials() { if [ -n "$TOKEN_FILE" ]; then rm -f "$TOKEN_FILE" 2>/dev/null || true; fi; }

# git with the handed-over token: our credential helper only (the token never appears in argv, in the
# environment or in the repository's configuration, and is never stored by git).
git_remote() {
  if [ -f "$GIT_CA_FILE" ]; then
    cat /etc/ssl/certs/ca-certificates.crt "$GIT_CA_FILE" > "$STATE/git-ca.pem"
    set -- -c "http.sslCAInfo=$STATE/git-ca.pem" "$@"
  fi
  GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false SSH_ASKPASS=/bin/false GIT_HTTP_LOW_SPEED_LIMIT=1024 \
    GIT_HTTP_LOW_SPEED_TIME=30 DRAPE_REPO_TOKEN_FILE="$TOKEN_FILE" \
    timeout "$CLONE_TIMEOUT_S" git -c credential.helper= -c credential.helper=/usr/local/lib/drape/git-credential \
      -c credential.interactive=false -c advice.detachedHead=false -c init.defaultBranch=main "$@"
}

# Why a clone or fetch failed, in words a user understands (from git's stderr, which never holds the token).
clone_failure() {
  log="$1"
  free_kib="$(df -Pk "$WORKDIR" | awk 'NR==2 {print $4}')"
  if grep -q -i -e 'No space left on device' -e 'unable to write' "$log" || [ "${free_kib:-1024}" -lt 1024 ]; then
    echo "the repository does not fit the preview's disk ($(df -h "$WORKDIR" | awk 'NR==2 {print $2}') in all)"
  elif grep -q -e 'Authentication failed' -e 'could not read Username' -e 'returned error: 401' "$log"; then
    echo "the repository refused the access token (wrong, revoked or expired): reconnect the repository"
  elif grep -q -i -e 'not found' -e 'returned error: 404' -e 'returned error: 403' "$log" \
       && ! grep -q -e 'Remote branch' -e "couldn't find remote ref" "$log"; then
    echo "the repository $DRAPE_REPO does not exist, or this token cannot see it"
  elif grep -q -e 'Remote branch' -e "couldn't find remote ref" -e 'not our ref' "$log"; then
    echo "the branch, tag or commit '${DRAPE_REF:-}' does not exist in the repository"
  elif grep -q -i -e 'certificate' -e 'SSL' "$log"; then
    echo "the git server's TLS certificate is not trusted"
  elif grep -q -i -e 'Could not resolve host' -e 'Failed to connect' -e 'Connection refused' \
       -e 'timed out' -e 'Operation too slow' "$log"; then
    echo "the git server cannot be reached"
  elif [ "${rc:-0}" = 124 ]; then
    echo "fetching the repository took longer than ${CLONE_TIMEOUT_S} s"
  else
    echo "git could not fetch the repository ($(grep -e 'fatal:' -e 'error:' "$log" | tail -n 1 | cut -c1-160))"
  fi
}

fetch_project() {
  mkdir -p "$STATE"
  log="${TMPDIR:-/tmp}/drape-clone.log"  # not in the workspace: a full disk must not swallow git's words
  is_commit=no  # a full commit id; anything else is a branch or a tag
  if printf '%s' "${DRAPE_REF:-}" | grep -q -x -E '[0-9a-f]{40}'; then is_commit=yes; fi
  if [ -d "$APP/.git" ] && [ "$(git -C "$APP" config --get remote.origin.url || true)" = "$DRAPE_REPO" ]; then
    # A kept workspace: bring it to the ref; untracked and ignored files (node_modules, caches) stay.
    ref="${DRAPE_REF:-HEAD}"
    rc=0
    (cd "$APP" && git_remote fetch --quiet --depth 1 --filter=blob:none origin "$ref" \
      && git_remote checkout --quiet --force FETCH_HEAD) >"$log" 2>&1 || rc=$?
    [ "$rc" = 0 ] && return 0
    forget_credentials
    fail "$(clone_failure "$log")" "$log"
  fi
  rm -rf "$APP"
  rc=0
  if [ "$is_commit" = yes ]; then
    # --branch takes branches and tags only: a commit is fetched by its id (the server must allow it, as
    # GitHub and GitLab do).
    mkdir -p "$APP"
    (cd "$APP" && git init --quiet && git remote add origin "$DRAPE_REPO" \
      && git_remote fetch --quiet --depth 1 --filter=blob:none origin "$DRAPE_REF" \
      && git_remote checkout --quiet FETCH_HEAD) >"$log" 2>&1 || rc=$?  # a blobless checkout fetches blobs
  else
    set --
    if [ -n "${DRAPE_REF:-}" ]; then set -- --branch "$DRAPE_REF"; fi
    git_remote clone --quiet --depth 1 --filter=blob:none --no-tags "$@" -- "$DRAPE_REPO" "$APP" >"$log" 2>&1 \
      || rc=$?
  fi
  [ "$rc" = 0 ] && return 0
  forget_credentials
  why="$(clone_failure "$log")"
  rm -rf "$APP"  # a partial clone (a full disk, say) helps nobody
  fail "$why" "$log"
}

trap forget_credentials EXIT
mkdir -p "$(dirname "$PHASE_FILE")" "$WORKDIR"
if [ -n "${DRAPE_REPO:-}" ]; then
  phase installing
  fetch_project
  forget_credentials  # before any of the project's own code (install scripts, dev server) runs
  DRAPE_FETCHED_AT_MS="$(date +%s%3N)"
  export DRAPE_FETCHED_AT_MS
  cd "$APP"
else
  forget_credentials
  cd /opt/drape/starter  # no repository: the template's starter, its dependencies installed in the image
fi
trap - EXIT
exec node /opt/drape/preview.mjs

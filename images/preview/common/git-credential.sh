#!/bin/sh
# git's credential helper in a preview (the only one: the entrypoint resets the list first). On "get" it prints
# the repository token the runtime handed over as a file ($DRAPE_REPO_TOKEN_FILE, mode 0400): git reads it from
# this helper's output, so the secret is never in an argv, the environment, .git/config or a log, and git stores
# nothing ("store" and "erase" do nothing). A token written "user:secret" (a git server's own per-preview
# tokens, as the lab's) gives that user; a bare token goes as GitHub's "x-access-token" (GitLab and others take
# any user name with a token).
[ "${1:-}" = get ] || exit 0
file="${DRAPE_REPO_TOKEN_FILE:-}"
[ -n "$file" ] && [ -r "$file" ] || exit 0
token="$(cat "$file")"
case "$token" in
  *:*) user="${token%%:*}"; secret="${token#*:}" ;;
  *) user=x-access-token; secret="$token" ;;
esac
printf 'username=%s\npassword=%s\n' "$user" "$secret"

#!/bin/sh
# A git pre-commit hook: validate the host specs a commit changes, and refuse the commit when
# one is invalid (hostform prints every error with file:line:column).
# Install: cp docs/ci/pre-commit-hook.sh .git/hooks/pre-commit (hostform on PATH).
# Host specs are $HOSTFORM_SPECS/*.yaml (specs/ by default); a changed file deeper in that
# directory (an included fragment, such as specs/common/templates.yaml) is no spec of its own,
# so it validates every host spec, which validates what they include. The files are validated
# as they are in the working tree. Bypass once with `git commit --no-verify`.
# Tested by tests/it/ci.rs in a temporary git repository.
set -eu
dir=${HOSTFORM_SPECS:-specs}
all=
set --
# NUL-separated, so that any file name passes through unchanged.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
git diff --cached --name-only -z --diff-filter=ACMR -- "$dir/" | tr '\0' '\n' > "$tmp"
while IFS= read -r f; do
  case "$f" in
    "$dir"/*/*) all=1 ;;
    "$dir"/*.yaml) set -- "$@" "$f" ;;
  esac
done < "$tmp"
if [ -n "$all" ]; then
  set --
  for f in "$dir"/*.yaml; do
    [ -e "$f" ] && set -- "$@" "$f"
  done
fi
[ "$#" -gt 0 ] || exit 0
exec hostform validate "$@"

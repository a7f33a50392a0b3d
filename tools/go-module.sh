# Sourced by tools/build-local-binaries.sh, build-node-components.sh and build-kind-images.sh (not run on its own).
# gomod DIR VERSION PACKAGE...: a throw-away module in DIR requiring the packages' module at VERSION (go get), so
# `go build` in DIR builds those packages at that version; fails when one of them does not resolve (go list).
gomod() {
  local dir=$1 ver=$2 pkgs=() p; shift 2
  for p in "$@"; do pkgs+=("$p@$ver"); done
  mkdir -p "$dir"
  ( cd "$dir"
    [ -f go.mod ] || printf 'module kready.local/%s\n\ngo 1.26.0\n' "$(basename "$dir")" > go.mod
    go get "${pkgs[@]}" 2>&1 | grep -v '^go: \(added\|upgraded\|downgraded\|finding\|downloading\)' >&2 || true
    go list "${pkgs[@]%@*}" >/dev/null
  )
}

# coredns_version BINARY: the version a CoreDNS binary reports, as vX.Y.Z ("" when it is missing or does not run)
coredns_version() {
  [ -x "$1" ] || return 0
  "$1" -version 2>/dev/null | sed -n 's/^CoreDNS-/v/p' | head -n1
}

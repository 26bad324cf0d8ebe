#!/usr/bin/env bash
# install-helm.sh - helm, for the chart's tests (tests/unit/test_helm.py), built from the Go
# module proxy: the tests' machines reach package registries only, so no release download.
# Idempotent: does nothing when $HELM_BIN already is $HELM_VERSION.  As root:
#   bash scripts/install-helm.sh            (scripts/ci-setup.sh runs it)
# Cold (no module or build cache): about 2 minutes on 2 cores, ~400 MB of modules and
# ~700 MB of Go build cache, both left in Go's default caches for the next version; warm: <1 s.
#
# Go: helm v3.22's go.mod names go 1.26. The machine's Go is used when it is 1.21 or newer
# (GOTOOLCHAIN=auto then takes a newer toolchain from the proxy if helm needs one); with no Go
# or an older one (Debian 12's golang-go is 1.19), Debian's golang-go downloads the Go
# toolchain *module* of $GO_TOOLCHAIN from the proxy into $GO_TOOLCHAIN_DIR, and that builds.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
HELM_BIN=${HELM_BIN:-/usr/local/bin/helm}
# the Kubernetes version helm assumes for `helm template` and lint: its client-go's (v0.37),
# as helm's own Makefile sets it (K8S_MODULES_MAJOR_VER/MINOR_VER)
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=37
GO_TOOLCHAIN=${GO_TOOLCHAIN:-go1.26.8}
GO_TOOLCHAIN_DIR=${GO_TOOLCHAIN_DIR:-/usr/local/lib/slurm-exporter-go}

if [ -x "$HELM_BIN" ] && [ "$("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "install-helm.sh: $HELM_BIN is $HELM_VERSION already"
  exit 0
fi

# go_minor GO: the minor version of that go command (19 for go1.19.8), or 0
go_minor() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || { echo 0; return; }
  v=${v#go1.}
  echo "${v%%[!0-9]*}"
}

# a go command that can build helm: the machine's, else the toolchain module bootstrapped
# by Debian's golang-go (the zip has no exec bits: the go command sets them when it switches
# toolchains itself; here it is done by hand)
find_go() {
  local go dir arch
  for go in "$(command -v go || true)" /usr/local/go/bin/go "$GO_TOOLCHAIN_DIR/bin/go"; do
    if [ -n "$go" ] && [ -x "$go" ] && [ "$(go_minor "$go")" -ge 21 ]; then
      echo "$go"
      return
    fi
  done
  echo "install-helm.sh: no Go >= 1.21 here; bootstrapping $GO_TOOLCHAIN from the Go module proxy" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
  arch=$(dpkg --print-architecture)
  dir=$(cd / && /usr/bin/go mod download -json "golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-$arch" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "install-helm.sh: cannot download the Go toolchain module $GO_TOOLCHAIN" >&2; exit 1; }
  rm -rf "$GO_TOOLCHAIN_DIR"
  cp -r "$dir" "$GO_TOOLCHAIN_DIR"
  chmod -R u+w "$GO_TOOLCHAIN_DIR"
  chmod +x "$GO_TOOLCHAIN_DIR"/bin/* "$GO_TOOLCHAIN_DIR"/pkg/tool/*/*
  echo "$GO_TOOLCHAIN_DIR/bin/go"
}

GO=$(find_go)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# as helm's Makefile builds a release: static, stripped, the full version and Kubernetes version
(cd "$tmp" && CGO_ENABLED=0 GOTOOLCHAIN=auto GOBIN="$tmp/bin" "$GO" install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$HELM_K8S_MAJOR \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$HELM_K8S_MAJOR \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$tmp/go.log" 2>&1 \
  || { cat "$tmp/go.log" >&2; echo "install-helm.sh: building helm $HELM_VERSION failed" >&2; exit 1; }
install -D -m 0755 "$tmp/bin/helm" "$HELM_BIN"
echo "install-helm.sh: $("$HELM_BIN" version --short) in $HELM_BIN ($(( $(date +%s) - start )) s, $("$GO" env GOVERSION))"

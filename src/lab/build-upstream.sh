#!/usr/bin/env bash
# Builds one upstream component for the lab from its published Go module and installs the
# programs into a binaries directory in the layout `k8s-boot fetch` uses.
#
#   build-upstream.sh COMPONENT VERSION BINARIES_DIR CACHE_DIR
#
# COMPONENT is one of: kubernetes kubernetes-test etcd containerd runc cni-plugins cni-flannel crictl coredns
# flannel registry, or any other name with GO_MODULE, GO_PACKAGE and GO_LDFLAGS set in the
# environment (an add-on's program: its row in src/addons.rs). BINARIES_DIR `-` installs nothing (programs that go into images); the
# last line printed on stdout is the cache directory holding the built programs. Each build happens in a generated wrapper module (the upstream modules cannot
# be `go install`ed: their go.mod files replace modules with local paths). Results are cached in
# CACHE_DIR/<component>-<version>-<go version>-<flags hash>/, so a second run only copies.
# `k8s-boot lab up` calls this script (it is embedded in the binary); it can also be run alone.
set -euo pipefail

component=$1
version=$2
# Absolute from here on: the build runs in a temporary directory (`cd "$work"` below).
abs() { if [[ $1 == - || $1 == /* ]]; then printf '%s' "$1"; else printf '%s/%s' "$PWD" "$1"; fi; }
bin_dir=$(abs "$3")
cache_root=$(abs "$4")
arch=$(go env GOARCH)
go_version=$(go env GOVERSION)
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN=local

log() { printf '%s: %s\n' "$component" "$*" >&2; }

# Module, the packages to build, cgo, extra ldflags and extra build tags per component.
cgo=0
tags=""
pins=()
extra_tools=()    # programs of other modules, at the version the component's go.mod requires
test_binaries=()  # packages built with `go test -c` into <last element>.test
# The version Kubernetes' programs print: upstream's hack/lib/version.sh sets these in both
# packages.
kubernetes_version_ldflags() {
    local minor=${version#v} major pkg ldx=""
    major=${minor%%.*}; minor=${minor#*.}; minor=${minor%%.*}
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        ldx+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ldx+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    printf '%s' "$ldx"
}

case "$component" in
kubernetes)
    module=k8s.io/kubernetes
    ldx=$(kubernetes_version_ldflags)
    packages=(cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet
        cmd/kube-proxy cmd/kubectl)
    ;;
kubernetes-test)
    # The conformance suite's programs, from the same module and cache as `kubernetes`:
    # e2e.test (a test binary, built with `go test -c` below), ginkgo at the version
    # Kubernetes' go.mod requires, go-runner (the conformance image's entry point), and the
    # programs of the test images: agnhost, nonewprivs and the sample-apiserver (a staging
    # module, so pinned to this release like the others).
    module=k8s.io/kubernetes
    ldx=$(kubernetes_version_ldflags)
    packages=(test/images/agnhost test/images/nonewprivs test/conformance/image/go-runner)
    extra_tools=(github.com/onsi/ginkgo/v2/ginkgo k8s.io/sample-apiserver)
    test_binaries=(test/e2e)
    ;;
etcd)
    module=go.etcd.io/etcd
    ldx="-X go.etcd.io/etcd/api/v3/version.GitSHA=release"
    # etcd is a set of modules: the server program lives in the root module, the tools in theirs.
    packages=(server/v3 etcdctl/v3 etcdutl/v3)
    ;;
containerd)
    module=github.com/containerd/containerd/v2
    ldx="-X $module/version.Version=$version -X $module/version.Revision=release -X $module/version.Package=github.com/containerd/containerd/v2"
    packages=(cmd/containerd cmd/containerd-shim-runc-v2 cmd/ctr)
    tags="no_btrfs no_devmapper no_zfs"
    ;;
runc)
    module=github.com/opencontainers/runc
    ldx="-X main.version=${version#v} -X main.gitCommit=release"
    packages=(.)
    cgo=1
    tags="seccomp"
    ;;
cni-flannel)
    # The flannel CNI plugin as the CNI plugins project shipped it up to v0.9.1 (flannel's own
    # fork, github.com/flannel-io/cni-plugin, is not published as a Go module).
    module=github.com/containernetworking/plugins
    ldx="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version"
    packages=(plugins/meta/flannel)
    ;;
cni-plugins)
    module=github.com/containernetworking/plugins
    ldx="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version"
    packages=(plugins/main/bridge plugins/ipam/host-local plugins/main/loopback plugins/meta/portmap)
    ;;
crictl)
    module=sigs.k8s.io/cri-tools
    ldx="-X sigs.k8s.io/cri-tools/pkg/version.Version=$version"
    packages=(cmd/crictl)
    ;;
coredns)
    module=github.com/coredns/coredns
    ldx="-X github.com/coredns/coredns/coremain.GitCommit=release"
    packages=(.)
    ;;
flannel)
    module=github.com/flannel-io/flannel
    # Its udp backend is C (cgo); linked statically, as upstream's release build does.
    ldx="-X github.com/flannel-io/flannel/pkg/version.Version=$version -extldflags=-static"
    packages=(.)
    cgo=1
    # The Go module proxy serves no archive of the Tencent Cloud VPC SDK release flannel pins
    # (only of older ones); its backend (unused by the vxlan backend) builds against this one.
    pins=(github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc@v1.0.1000)
    ;;
registry)
    # The CNCF distribution registry: the lab's nodes pull through it (their registry mirror).
    module=github.com/distribution/distribution/v3
    ldx="-X github.com/distribution/distribution/v3/version.version=$version"
    packages=(cmd/registry)
    ;;
*)
    # An add-on's program (src/addons.rs): its row gives the module, the package and the
    # linker flags.
    if [[ -z ${GO_MODULE:-} || -z ${GO_PACKAGE:-} ]]; then
        echo "build-upstream.sh: unknown component '$component' (and no GO_MODULE, GO_PACKAGE)" >&2
        exit 2
    fi
    module=$GO_MODULE
    ldx=${GO_LDFLAGS:-}
    packages=("$GO_PACKAGE")
    ;;
esac

ldflags="-s -w${ldx:+ }${ldx# }"
key_src="$component $version $go_version $arch cgo=$cgo tags=$tags ldflags=$ldflags packages=${packages[*]}${pins[*]:+ pins=${pins[*]}}${extra_tools[*]:+ tools=${extra_tools[*]}}${test_binaries[*]:+ tests=${test_binaries[*]}}"
key=$(printf '%s' "$key_src" | sha256sum | cut -c1-12)
cache="$cache_root/$component-$version-$go_version-$key"

mkdir -p "$cache_root"
# One build of a component at a time (two labs or tests may ask at once).
exec 9>"$cache_root/.$component.lock"
flock 9
if [[ ! -f "$cache/.complete" ]]; then
    log "building $module@$version with $go_version (cold builds take minutes on 2 cores)"
    work=$(mktemp -d "$cache_root/.work-$component.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    cd "$work"
    build_env=(CGO_ENABLED=$cgo)
    targets=()
    if [[ $component == etcd ]]; then
        # One wrapper requiring each program's module at the same version. Upstream's go.mod
        # files replace their sibling modules with ../paths; pin every sibling to the release.
        printf 'module k8s-boot.local/lab-build\n\ngo 1.26.0\n' >go.mod
        for p in "${packages[@]}"; do
            m="$module/$p"
            go mod edit -require="$m@$version"
            targets+=("$m")
        done
        for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3 etcdctl/v3 etcdutl/v3; do
            go mod edit -replace="$module/$m=$module/$m@$version"
        done
    else
        printf 'module k8s-boot.local/lab-build\n\ngo 1.26.0\n\nrequire %s %s\n' "$module" "$version" >go.mod
        upstream_mod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
        # Every module upstream replaces with a local directory (Kubernetes' ./staging modules)
        # is published under the same path; pin it to the matching release.
        if [[ $module == k8s.io/kubernetes ]]; then
            staging_version="v0.${version#v1.}"
            while read -r dep; do
                go mod edit -replace="$dep=$dep@$staging_version"
            done < <(sed -n 's#^\s*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/.*#\1#p' "$upstream_mod")
        fi
        # Versions upstream's go.mod excludes stay excluded (module resolution would pick
        # them otherwise).
        while read -r excluded; do
            go mod edit -exclude="$excluded"
        done < <(awk '/^exclude \(/{e=1;next} e&&/^\)/{e=0} e&&NF>=2&&$1!~/^\/\//{print $1 "@" $2} /^exclude [^(]/{print $2 "@" $3}' "$upstream_mod")
        # Other replacements in upstream's go.mod (forks, pins) apply to its build too.
        while read -r from to; do
            go mod edit -replace="$from=$to"
        done < <(awk '/^replace \(/{r=1;next} r&&/^\)/{r=0} r&&$2=="=>"&&$3!~/^\./{print $1, $3 ($4 ? "@" $4 : "")} /^replace [^(]/&&$4!~/^\./{print $2, $4 ($5 ? "@" $5 : "")}' "$upstream_mod")
        for p in "${packages[@]}"; do
            if [[ $p == . ]]; then targets+=("$module"); else targets+=("$module/$p"); fi
        done
    fi
    for pin in "${pins[@]}"; do
        go mod edit -replace="${pin%@*}=$pin"
    done
    targets+=("${extra_tools[@]}")
    for t in "${targets[@]}"; do
        printf 'tool %s\n' "$t" >>go.mod
    done
    log "resolving modules"
    go mod tidy
    mkdir -p out
    log "compiling ${#targets[@]} program(s)"
    env "${build_env[@]}" go build -trimpath ${tags:+-tags "$tags"} -ldflags "$ldflags" -o out/ "${targets[@]}"
    for t in "${test_binaries[@]}"; do
        log "compiling the test binary of $module/$t"
        env "${build_env[@]}" go test -c -trimpath ${tags:+-tags "$tags"} -ldflags "$ldflags" \
            -o "out/${t##*/}.test" "$module/$t"
    done
    mkdir -p "$cache_root"
    rm -rf "$cache.tmp"
    mv out "$cache.tmp"
    cp go.mod go.sum "$cache.tmp/"
    printf '%s\n' "$key_src" >"$cache.tmp/.key"
    touch "$cache.tmp/.complete"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
else
    log "cached in $cache"
fi

printf '%s\n' "$cache"
[[ $bin_dir != - ]] || exit 0
# Install into the binaries directory with fetch's names: temp file, then rename.
dest="$bin_dir"
if [[ $component == cni-* ]]; then dest="$bin_dir/cni"; fi
mkdir -p "$dest"
for f in "$cache"/*; do
    [[ -f $f && -x $f ]] || continue
    name=$(basename "$f")
    case "$name" in
    server) name=etcd ;;
    esac
    if ! cmp -s "$f" "$dest/$name"; then
        install -m 0755 "$f" "$dest/.$name.tmp"
        mv -f "$dest/.$name.tmp" "$dest/$name"
    fi
done
log "installed into $dest"

//! The conformance suite's images, made the way upstream's Dockerfiles make them but from
//! the programs the lab built and Debian's packages (test/images/* and
//! test/conformance/image in the Kubernetes module):
//!
//! | Image | Upstream | Here |
//! |-------|----------|------|
//! | conformance | debian-base + e2e.test, ginkgo, kubectl, go-runner | busybox + the same four programs, built at the cluster's version |
//! | agnhost (both tags) | alpine + bind-tools, curl, netcat-openbsd, iproute2, bash, socat, CoreDNS as `/coredns`, porter's test certificate, user 1000 and group 50000 | busybox + Debian's dig/nslookup, curl, nc, ip, bash, socat; the lab's CoreDNS; the same certificate, user and group |
//! | busybox | busybox 1.37 | busybox built from Debian's source package, static, every applet linked in /bin (see [`super::busybox`]) |
//! | nginx (both tags) | the official nginx image | Debian's nginx serving /usr/share/nginx/html on port 80, logs to stdout/stderr, busybox for a shell |
//! | etcd | etcd + etcdctl at /usr/local/bin | the lab's etcd build (the profile's etcd: the tag's version) |
//! | kitten, nautilus | agnhost + their picture and data.json, `test-webserver` | our agnhost + the same two files from the Kubernetes module |
//! | nonewprivs | alpine + `nnp` (prints its effective uid), setuid root | busybox + the same program built from the Kubernetes module, setuid root |
//! | sample-apiserver | alpine + /sample-apiserver | busybox + the sample-apiserver built from its staging module at the cluster's version |
//! | glibc-dns-testing | debian-slim + dnsutils, CoreDNS as `/coredns` | busybox + bash as `/bin/sh`, Debian's `dig`, `nslookup`, `host` and glibc's `getent`; the lab's CoreDNS |
//!
//! The tags are upstream's; the programs in agnhost, nginx and busybox are the versions the
//! Kubernetes module and Debian hold, which are what the tests call, not the tag's versions.

use super::base::{ca_bundle, NSSWITCH, PATH_ENV};
use super::busybox::applet_entries;
use super::closure::Closure;
use super::inputs_digest::sha256_file;
use super::spec::{ConformancePrograms, Image, ImageInputs};
use crate::lab::error::LabError;
use crate::oci::{Entry, ImageConfig};
use std::collections::BTreeMap;
use std::path::Path;

const BUSYBOX: &[&str] = &["busybox-static"];

/// agnhost's tools and every library package they need (`apt-cache depends --recurse`).
const AGNHOST_PACKAGES: &[&str] = &[
    "busybox-static",
    "bash",
    "bind9-dnsutils",
    "bind9-host",
    "bind9-libs",
    "curl",
    "libcurl4",
    "netcat-openbsd",
    "iproute2",
    "socat",
    "ca-certificates",
    "netbase",
    "libacl1",
    "libbpf1",
    "libbrotli1",
    "libbsd0",
    "libbz2-1.0",
    "libc6",
    "libc-bin",
    "libcap2",
    "libcom-err2",
    "libdb5.3",
    "libedit2",
    "libelf1",
    "libffi8",
    "libfstrm0",
    "libgcc-s1",
    "libgmp10",
    "libgnutls30",
    "libgssapi-krb5-2",
    "libhogweed6",
    "libicu72",
    "libidn2-0",
    "libjemalloc2",
    "libjson-c5",
    "libk5crypto3",
    "libkeyutils1",
    "libkrb5-3",
    "libkrb5support0",
    "libldap-2.5-0",
    "liblmdb0",
    "liblzma5",
    "libmaxminddb0",
    "libmd0",
    "libmnl0",
    "libnettle8",
    "libnghttp2-14",
    "libnsl2",
    "libp11-kit0",
    "libpcre2-8-0",
    "libprotobuf-c1",
    "libpsl5",
    "libreadline8",
    "librtmp1",
    "libsasl2-2",
    "libsasl2-modules-db",
    "libselinux1",
    "libssh2-1",
    "libssl3",
    "libstdc++6",
    "libtasn1-6",
    "libtinfo6",
    "libtirpc3",
    "libunistring2",
    "libuv1",
    "libwrap0",
    "libxml2",
    "libxtables12",
    "libzstd1",
    "zlib1g",
];
/// The DNS tools of agnhost and glibc-dns-testing.
const DNS_TOOLS: &[&str] = &["usr/bin/dig", "usr/bin/nslookup", "usr/bin/host"];
/// agnhost's tools besides the DNS ones; `getent` answers the DNS tests' `getent hosts`
/// (upstream's Alpine base has musl's).
const AGNHOST_TOOLS: &[&str] = &[
    "bin/bash",
    "usr/bin/getent",
    "usr/bin/curl",
    "bin/nc.openbsd",
    "bin/ip",
    "usr/bin/socat",
    "etc/protocols",
    "etc/services",
];

const NGINX_PACKAGES: &[&str] = &[
    "busybox-static",
    "nginx",
    "nginx-common",
    "libc6",
    "libcrypt1",
    "libpcre2-8-0",
    "libssl3",
    "zlib1g",
    "libgcc-s1",
];

/// What the official nginx image's default site does: the welcome page on port 80, logs to
/// the container's output.
const NGINX_CONF: &str = "user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /dev/stderr;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        root /usr/share/nginx/html;
        index index.html;
        server_name _;
    }
}
";

pub(super) fn packages(image: Image) -> &'static [&'static str] {
    match image {
        // A superset of what glibc-dns-testing needs (libc-bin: getent).
        Image::Agnhost | Image::AgnhostPrev | Image::GlibcDnsTesting => AGNHOST_PACKAGES,
        Image::Kitten | Image::Nautilus => AGNHOST_PACKAGES,
        Image::Nginx | Image::NginxNew => NGINX_PACKAGES,
        Image::Conformance | Image::SampleApiserver | Image::Etcd | Image::Nonewprivs => BUSYBOX,
        _ => &[],
    }
}

fn programs(opts: &ImageInputs) -> Result<&ConformancePrograms, LabError> {
    opts.conformance.as_ref().ok_or_else(|| {
        LabError::Options("the conformance images need the kubernetes-test build".into())
    })
}

/// `(path in the image, file)` of the built programs `image` holds.
fn built_programs(
    image: Image,
    opts: &ImageInputs,
) -> Result<Vec<(String, std::path::PathBuf)>, LabError> {
    let p = programs(opts)?;
    let t = |n: &str| p.test_programs.join(n);
    Ok(match image {
        Image::Conformance => vec![
            ("/usr/local/bin/e2e.test".into(), t("e2e.test")),
            ("/usr/local/bin/ginkgo".into(), t("ginkgo")),
            ("/usr/local/bin/kubectl".into(), p.kubectl.clone()),
            ("/usr/local/bin/kubeconformance".into(), t("go-runner")),
        ],
        Image::Agnhost | Image::AgnhostPrev | Image::Kitten | Image::Nautilus => vec![
            ("/agnhost".into(), t("agnhost")),
            ("/coredns".into(), opts.coredns.clone()),
        ],
        Image::SampleApiserver => vec![("/sample-apiserver".into(), t("sample-apiserver"))],
        Image::Nonewprivs => vec![("/usr/local/bin/nnp".into(), t("nonewprivs"))],
        Image::GlibcDnsTesting => vec![("/coredns".into(), opts.coredns.clone())],
        Image::Etcd => vec![
            ("/usr/local/bin/etcd".into(), p.etcd.join("server")),
            ("/usr/local/bin/etcdctl".into(), p.etcd.join("etcdctl")),
        ],
        _ => Vec::new(),
    })
}

/// What kitten and nautilus add to agnhost (upstream's Dockerfiles copy them from
/// test/images/<name>/html into the working directory, `/`): the picture and `data.json`.
fn web_files(image: Image, opts: &ImageInputs) -> Vec<(String, std::path::PathBuf)> {
    let name = match image {
        Image::Kitten => "kitten",
        Image::Nautilus => "nautilus",
        _ => return Vec::new(),
    };
    let html = opts
        .kubernetes_src
        .join("test/images")
        .join(name)
        .join("html");
    vec![
        (format!("/{name}.jpg"), html.join(format!("{name}.jpg"))),
        ("/data.json".into(), html.join("data.json")),
    ]
}

/// Porter's test certificate and key, which agnhost's `porter` serves with.
fn porter_files(opts: &ImageInputs) -> [(String, std::path::PathBuf); 2] {
    let dir = opts.kubernetes_src.join("test/images/agnhost/porter");
    [
        ("/localhost.crt".into(), dir.join("localhost.crt")),
        ("/localhost.key".into(), dir.join("localhost.key")),
    ]
}

pub(super) fn inputs(image: Image, opts: &ImageInputs) -> Result<Vec<String>, LabError> {
    let mut lines = Vec::new();
    let mut files = built_programs(image, opts)?;
    if matches!(
        image,
        Image::Agnhost | Image::AgnhostPrev | Image::Kitten | Image::Nautilus
    ) {
        files.extend(porter_files(opts));
        // The tools are part of the recipe: adding one makes the image again.
        lines.push(format!("tools {}", AGNHOST_TOOLS.join(" ")));
    }
    files.extend(web_files(image, opts));
    for (name, file) in files {
        lines.push(format!("file {name} {}", sha256_file(&file, &name)?));
    }
    if matches!(image, Image::Nginx | Image::NginxNew) {
        lines.push(format!(
            "nginx.conf {}",
            crate::digest::sha256_hex(NGINX_CONF.as_bytes())
        ));
    }
    Ok(lines)
}

pub(super) fn contents(
    image: Image,
    opts: &ImageInputs,
    root: &Path,
) -> Result<(Vec<Entry>, ImageConfig), LabError> {
    let what = format!("the {image:?} image");
    // Keyed by path: a real tool wins over busybox's applet of the same name.
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut put = |e: Entry| {
        entries.insert(e.path.trim_start_matches('/').to_string(), e);
    };
    for e in applet_entries(&root.join("bin/busybox"))? {
        put(e);
    }
    let mut closure = Closure::new(root, &what);
    let mut config = ImageConfig {
        env: vec![PATH_ENV.into()],
        working_dir: "/".into(),
        ..ImageConfig::default()
    };
    let mut passwd =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            .to_string();
    let mut group = "root:x:0:\nnobody:x:65534:\n".to_string();
    match image {
        Image::Conformance => {
            config.entrypoint = vec!["kubeconformance".into()];
            config.env.extend(
                [
                    r"E2E_FOCUS=\[Conformance\]",
                    "E2E_SKIP=",
                    "E2E_PROVIDER=local",
                    "E2E_PARALLEL=1",
                    "E2E_VERBOSITY=4",
                    "RESULTS_DIR=/tmp/results",
                    "KUBECONFIG=",
                ]
                .map(String::from),
            );
        }
        Image::Agnhost | Image::AgnhostPrev | Image::Kitten | Image::Nautilus => {
            for tool in AGNHOST_TOOLS.iter().chain(DNS_TOOLS) {
                closure.add(tool)?;
            }
            put(Entry::symlink("/usr/bin/nc", "/bin/nc.openbsd"));
            // Debian's busybox shell runs its own applets before PATH (`ip`, `nc`, `nslookup`
            // would be busybox's): the tests' scripts get bash, which looks PATH up.
            put(Entry::symlink("/bin/sh", "bash"));
            put(Entry::symlink("/agnhost-2", "agnhost"));
            for (name, file) in porter_files(opts) {
                put(Entry::file(&name, file, 0o644));
            }
            put(Entry::dir("/uploads", 0o755));
            put(Entry::bytes(
                "/etc/ssl/certs/ca-certificates.crt",
                ca_bundle(root)?,
                0o644,
            ));
            passwd.push_str(
                "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
            );
            group.push_str("user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n");
            config.entrypoint = vec!["/agnhost".into()];
            // kitten and nautilus: agnhost serving their picture and data.json from `/`.
            let web = web_files(image, opts);
            let cmd = if web.is_empty() {
                "pause"
            } else {
                "test-webserver"
            };
            config.cmd = vec![cmd.into()];
            for (name, file) in web {
                put(Entry::file(&name, file, 0o644));
            }
        }
        Image::Nginx | Image::NginxNew => {
            closure.add("usr/sbin/nginx")?;
            for f in ["etc/nginx/mime.types", "usr/share/nginx/html/index.html"] {
                closure.add(f)?;
            }
            put(Entry::bytes("/etc/nginx/nginx.conf", NGINX_CONF, 0o644));
            for d in ["/var/log/nginx", "/var/lib/nginx", "/run"] {
                put(Entry::dir(d, 0o755));
            }
            passwd.push_str("www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n");
            group.push_str("www-data:x:33:\n");
            config.cmd = ["nginx", "-g", "daemon off;"].map(String::from).to_vec();
        }
        Image::SampleApiserver => config.entrypoint = vec!["/sample-apiserver".into()],
        Image::Nonewprivs => config.cmd = vec!["nnp".into()],
        Image::GlibcDnsTesting => {
            // The DNS tests' probe scripts: dig, getent (glibc's resolver), seq, sleep.
            for tool in DNS_TOOLS.iter().chain(&["bin/bash", "usr/bin/getent"]) {
                closure.add(tool)?;
            }
            put(Entry::symlink("/bin/sh", "bash"));
        }
        Image::Etcd => {}
        _ => {
            return Err(LabError::Options(format!(
                "{image:?} is not a conformance image"
            )))
        }
    }
    for e in closure.into_entries() {
        put(e);
    }
    for (name, file) in built_programs(image, opts)? {
        // nonewprivs' program is setuid root, as upstream's Dockerfile makes it.
        let mode = if image == Image::Nonewprivs {
            0o4755
        } else {
            0o755
        };
        put(Entry::file(&name, file, mode));
    }
    put(Entry::bytes("/etc/passwd", passwd, 0o644));
    put(Entry::bytes("/etc/group", group, 0o644));
    put(Entry::bytes("/etc/nsswitch.conf", NSSWITCH, 0o644));
    put(Entry::dir("/tmp", 0o1777));
    put(Entry::dir("/root", 0o700));
    Ok((entries.into_values().collect(), config))
}

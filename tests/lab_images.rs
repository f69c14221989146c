//! The lab's image archives from their real inputs: upstream's pause.c from the Kubernetes
//! module, Debian's iptables, nftables and libraries from this machine's apt sources, and the
//! Node.js wheel from PyPI. The Go programs are stand-ins (small static C programs): building
//! CoreDNS, metrics-server and flannel takes the lab's Go build.
//!
//! Each archive is checked as an OCI image layout (digests, diff_ids, annotations), then its
//! layer is unpacked and its programs run in a chroot: pause prints its version, iptables
//! (nft backend) and nft write rules into a network namespace of their own, and the chat
//! server starts as user 1000 under the image's node and passes its own probe.
//!
//! Needs root (chroot, namespaces), the network (Debian mirror; PyPI unless the wheel is
//! cached), `go` with the module cache, `gcc`, `python3` with pip, `unshare`; it fails, never
//! skips, without them. The Node.js wheel is cached in `$K8S_BOOT_LAB_CACHE`, else in
//! `target/tmp/lab-cache`.

mod common;

use common::require_program;
use flate2::read::GzDecoder;
use k8s_boot::lab::images::{self, Image, ImageInputs, ImageNames};
use k8s_boot::lab::CACHE_ENV;
use k8s_boot::versions;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// A static program that prints its name and user.
fn stand_in(dir: &Path, name: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <unistd.h>\n\
             int main(void) {{ printf(\"{name} uid=%d\\n\", (int)getuid()); return 0; }}\n"
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args(["-static", "-Os", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Checks the archive as an OCI image layout and unpacks its layers into `dest`. Returns
/// the index descriptor's annotations and the image config.
fn check_and_unpack(archive: &Path, dest: &Path) -> (Value, Value) {
    let mut files = BTreeMap::new();
    let mut outer = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    let blob = |d: &Value| -> Vec<u8> {
        let digest = d["digest"].as_str().unwrap();
        let b = files[&format!("blobs/sha256/{}", &digest[7..])].clone();
        assert_eq!(sha256(&b), digest);
        assert_eq!(d["size"].as_u64().unwrap(), b.len() as u64);
        b
    };
    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let desc = &index["manifests"][0];
    let manifest: Value = serde_json::from_slice(&blob(desc)).unwrap();
    let config: Value = serde_json::from_slice(&blob(&manifest["config"])).unwrap();
    assert_eq!(config["os"], "linux");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    for (l, diff_id) in layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        let mut raw = Vec::new();
        GzDecoder::new(blob(l).as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256(&raw), diff_id.as_str().unwrap());
        let mut ar = tar::Archive::new(raw.as_slice());
        ar.set_preserve_permissions(true);
        ar.set_unpack_xattrs(true);
        ar.unpack(dest).unwrap();
    }
    (desc["annotations"].clone(), config)
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is writable for its length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

fn output(cmd: &mut Command) -> Output {
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `chroot root program args` with only the image's PATH in the environment.
fn in_image(root: &Path, config: &Value, user: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("chroot");
    if let Some(u) = user {
        cmd.arg(format!("--userspec={u}"));
    }
    cmd.arg(root).args(args).env_clear();
    for kv in config["config"]["Env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        cmd.env(k, v);
    }
    String::from_utf8(output(&mut cmd).stdout).unwrap()
}

#[test]
fn images_from_real_inputs_run_in_a_chroot() {
    assert!(
        is_root(),
        "tests/lab_images.rs needs root (chroot, network namespaces). Run the tests as root \
         (they do not skip)."
    );
    for (p, pkg) in [
        ("go", "golang-go"),
        ("gcc", "gcc"),
        ("python3", "python3"),
        ("apt-get", "apt"),
        ("dpkg-deb", "dpkg"),
        ("unshare", "util-linux"),
        ("chroot", "coreutils"),
    ] {
        require_program(p, pkg);
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let cache = std::env::var_os(CACHE_ENV)
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("lab-cache"));
    let dir = tempfile::tempdir_in(tmp).unwrap();
    let programs = dir.path().join("programs");
    fs::create_dir_all(&programs).unwrap();
    let profile = versions::profile_for("v1.37.2").unwrap();
    let opts = ImageInputs {
        binaries_dir: dir.path().join("binaries"),
        cache_dir: cache,
        kubernetes_src: images::kubernetes_module_dir("v1.37.2").unwrap(),
        coredns: stand_in(&programs, "coredns"),
        // A stand-in program for each add-on image (the images' recipes are the real ones).
        addon_programs: k8s_boot::addons::images()
            .map(|i| {
                let name = match &i.recipe {
                    k8s_boot::addons::Recipe::GoProgram(p) => p.program_name(),
                    k8s_boot::addons::Recipe::Flannel => "flanneld",
                };
                (i.key, stand_in(&programs, name))
            })
            .collect(),
        names: ImageNames::new(profile, "docker.io/library/node:24-bookworm-slim"),
        conformance: None,
    };

    let mut lines = Vec::new();
    let archives = images::build_all(&opts, &mut |l| {
        eprintln!("{l}");
        lines.push(l)
    })
    .unwrap();
    assert_eq!(lines.len(), Image::cluster().len(), "{lines:?}");
    assert!(lines.iter().all(|l| l.contains(": built in ")), "{lines:?}");
    lines.clear();
    assert_eq!(
        images::build_all(&opts, &mut |l| lines.push(l)).unwrap(),
        archives
    );
    assert!(lines.iter().all(|l| l.contains(": cached (")), "{lines:?}");

    let root = |image: Image| dir.path().join(format!("root-{}", image.name()));
    let mut configs = BTreeMap::new();
    for (image, archive) in Image::cluster().into_iter().zip(&archives) {
        let reference = image.reference(&opts.names).unwrap();
        assert_eq!(
            archive.file_name().unwrap().to_string_lossy(),
            images::archive_file_name(reference).unwrap()
        );
        let (annotations, config) = check_and_unpack(archive, &root(image));
        assert_eq!(annotations["io.containerd.image.name"], reference);
        assert_eq!(
            annotations["org.opencontainers.image.ref.name"],
            reference.rsplit_once(':').unwrap().1
        );
        configs.insert(image.name(), config);
    }
    let config = |image: Image| &configs[&image.name()];

    // pause: upstream's source, with upstream's version define.
    assert_eq!(config(Image::Pause)["config"]["User"], "65535:65535");
    let out = in_image(
        &root(Image::Pause),
        config(Image::Pause),
        None,
        &["/pause", "-v"],
    );
    assert_eq!(out, "pause.c v3.10.2-v1.37.2\n");

    // CoreDNS and metrics-server: their program, users and CA bundle.
    assert_eq!(
        config(Image::Coredns)["config"]["Entrypoint"],
        serde_json::json!(["/coredns"])
    );
    let out = in_image(
        &root(Image::Coredns),
        config(Image::Coredns),
        Some("65532:65532"),
        &["/coredns"],
    );
    assert_eq!(out, "coredns uid=65532\n");
    // Unpacked as containerd does, with its file capability.
    assert_eq!(
        xattr(&root(Image::Coredns).join("coredns"), "security.capability"),
        Some(vec![
            1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ])
    );
    assert_eq!(config(addon("metrics_server"))["config"]["User"], "65534");
    for image in [Image::Coredns, addon("metrics_server")] {
        let bundle =
            fs::read_to_string(root(image).join("etc/ssl/certs/ca-certificates.crt")).unwrap();
        assert!(bundle.matches("BEGIN CERTIFICATE").count() > 100);
        let passwd = fs::read_to_string(root(image).join("etc/passwd")).unwrap();
        assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    }

    // flannel: its program, and the tools it runs work with the libraries in the image,
    // against a network namespace of their own.
    let flannel = root(addon("flannel"));
    let fc = config(addon("flannel"));
    assert_eq!(
        fc["config"]["Entrypoint"],
        serde_json::json!(["/opt/bin/flanneld"])
    );
    assert_eq!(
        in_image(&flannel, fc, None, &["/opt/bin/flanneld"]),
        "flanneld uid=0\n"
    );
    for tool in [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        let out = in_image(&flannel, fc, None, &[tool, "--version"]);
        assert!(out.contains("v1.8.9 (nf_tables)"), "{tool}: {out}");
    }
    let out = in_image(&flannel, fc, None, &["nft", "--version"]);
    assert!(out.starts_with("nftables v1."), "{out}");
    // No shell in the image: each tool is its own chroot inside one namespace, driven by
    // the machine's shell.
    let script = format!(
        "set -e; c='chroot {r}';
         $c iptables -w -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment flannel -j MASQUERADE --random-fully
         $c iptables -w -A FORWARD -s 10.244.0.0/16 -m conntrack --ctstate NEW -j ACCEPT
         printf '*filter\\n-A FORWARD -d 10.244.0.0/16 -j ACCEPT\\nCOMMIT\\n' | $c iptables-restore -w --noflush
         $c ip6tables -w -t nat -A POSTROUTING -s fd00::/64 -j MASQUERADE
         $c nft add table inet t
         $c iptables-save
         $c nft list tables",
        r = flannel.display()
    );
    let out = output(
        Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-m comment --comment flannel -j MASQUERADE --random-fully"),
        "{text}"
    );
    assert!(
        text.contains("-A FORWARD -d 10.244.0.0/16 -j ACCEPT"),
        "{text}"
    );
    assert!(text.contains("--ctstate NEW"), "{text}");
    assert!(text.contains("table inet t"), "{text}");

    // chat: the server from the rendered ConfigMap runs as user 1000 with the image's node
    // and its exec probe (which reads /proc/net/tcp) passes.
    let chat = root(Image::Chat);
    let cc = config(Image::Chat);
    assert_eq!(cc["config"]["Cmd"], serde_json::json!(["node"]));
    let out = in_image(
        &chat,
        cc,
        Some("1000:1000"),
        &[
            "node",
            "-e",
            "console.log(process.version, require('os').userInfo().username)",
        ],
    );
    assert_eq!(out, "v24.19.0 node\n");
    fs::create_dir_all(chat.join("app")).unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/workloads/chat/server.js"),
        chat.join("app/server.js"),
    )
    .unwrap();
    fs::create_dir_all(chat.join("proc")).unwrap();
    let env: Vec<String> = cc["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let script = format!(
        "set -e; mount -t proc proc {r}/proc
         c='env -i {env} CHAT_PORT=30000 CHAT_PROXY_PORT=30001 chroot --userspec=1000:1000 {r}'
         $c node /app/server.js & pid=$!
         for i in $(seq 50); do $c node /app/server.js --probe 2>/dev/null && ok=1 && break; sleep 0.2; done
         kill $pid; wait $pid || true
         [ \"$ok\" = 1 ] && echo probe ok",
        r = chat.display(),
        env = env.join(" ")
    );
    let out = output(
        Command::new("unshare")
            .args(["--net", "--mount", "--fork", "sh", "-c", &script])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("probe ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The conformance images `lab build --conformance` made (tests/run-all.sh runs it before the
/// tests), from the real programs: each is a valid OCI archive under upstream's name, and the
/// tools the e2e tests call in it run in a chroot with the image's own libraries. The
/// built e2e.test names exactly the test images k8s-boot's version profile lists.
#[test]
fn conformance_images_of_the_lab_build_run_their_tools() {
    assert!(is_root(), "tests/lab_images.rs needs root (chroot)");
    let binaries = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lab-build/binaries");
    let dir = binaries.join(k8s_boot::conformance::IMAGES_DIR);
    assert!(
        dir.is_dir(),
        "{} is missing: run `cargo run -- lab build --dir target/lab-build --conformance` \
         first (tests/run-all.sh does)",
        dir.display()
    );
    let profile = versions::profile_for("v1.37.2").unwrap();
    let names = images::ConformanceNames::new("v1.37.2", profile);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let unpack = |reference: &str| -> (PathBuf, Value) {
        let file = dir.join(images::archive_file_name(reference).unwrap());
        let root = tmp.path().join(file.file_name().unwrap());
        let (annotations, config) = check_and_unpack(&file, &root);
        let full = images::normalize(reference).unwrap().full();
        assert_eq!(annotations["io.containerd.image.name"], full);
        (root, config)
    };
    let sh = |root: &Path, config: &Value, script: &str| -> String {
        in_image(root, config, None, &["/bin/sh", "-c", script])
    };

    // The conformance image: upstream's entry point and defaults; e2e.test lists the test
    // images under the names the profile gives them.
    let (root, config) = unpack(&names.conformance);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["kubeconformance"])
    );
    let env = config["config"]["Env"].to_string();
    assert!(env.contains(r#""RESULTS_DIR=/tmp/results""#), "{env}");
    let listed = in_image(
        &root,
        &config,
        None,
        &["/usr/local/bin/e2e.test", "--list-images"],
    );
    for wanted in [
        &names.agnhost,
        &names.agnhost_prev,
        &names.busybox,
        &names.nginx,
        &names.nginx_new,
        &names.etcd,
        &names.sample_apiserver,
        &names.kitten,
        &names.nautilus,
        &names.nonewprivs,
        &profile.pause_image.to_string(),
        names.glibc_dns_testing.as_ref().unwrap(),
    ] {
        assert!(
            listed.lines().any(|l| l == wanted),
            "e2e.test does not list {wanted}:\n{listed}"
        );
    }
    let version = in_image(
        &root,
        &config,
        None,
        &["/usr/local/bin/kubectl", "version", "--client"],
    );
    assert!(version.contains("v1.37.2"), "{version}");
    assert!(
        in_image(&root, &config, None, &["/usr/local/bin/ginkgo", "version"])
            .contains("Ginkgo Version 2.")
    );
    // What `conformance` runs in its output container.
    assert_eq!(
        sh(
            &root,
            &config,
            "printf 'ab\\n' > /tmp/f; tail -c +2 /tmp/f | base64"
        ),
        "Ygo=\n"
    );

    // agnhost: the program, and the tools the tests call, with the image's libraries.
    for reference in [&names.agnhost, &names.agnhost_prev] {
        let (root, config) = unpack(reference);
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/agnhost"])
        );
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["pause"]));
        let out = sh(
            &root,
            &config,
            "set -e; /agnhost --help | grep -o netexec | head -1; dig -v 2>&1; nslookup -version 2>&1 | head -1; \
             curl --version | head -1; nc -h 2>&1 | head -1; ip -V; bash --version | head -1; \
             socat -V | head -2 | tail -1; /coredns -version | head -1; id user-defined-in-image; \
             getent passwd user-defined-in-image",
        );
        for needle in [
            "netexec",
            "DiG 9.",
            "libcurl/",
            "OpenBSD netcat",
            "iproute2",
            "GNU bash",
            "socat version",
            "CoreDNS-",
            "group-defined-in-image",
            "user-defined-in-image:x:1000:1000:",
        ] {
            assert!(out.contains(needle), "{reference}: no {needle} in:\n{out}");
        }
    }

    // kitten and nautilus: agnhost's web server over their picture and data.json.
    for (reference, picture) in [
        (&names.kitten, "kitten.jpg"),
        (&names.nautilus, "nautilus.jpg"),
    ] {
        let (root, config) = unpack(reference);
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/agnhost"])
        );
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["test-webserver"])
        );
        let data = sh(
            &root,
            &config,
            "cat /data.json; /agnhost --help | grep -o test-webserver",
        );
        assert!(
            data.contains(picture) && data.contains("test-webserver"),
            "{data}"
        );
        assert!(root.join(picture).is_file(), "{picture}");
    }

    // nonewprivs: its program is setuid root; as another user it runs with euid 0 (the test
    // checks that no_new_privs keeps the caller's uid instead).
    let (root, config) = unpack(&names.nonewprivs);
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["nnp"]));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join("usr/local/bin/nnp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o4755);
    }
    let euid = in_image(&root, &config, Some("1000:1000"), &["/usr/local/bin/nnp"]);
    assert_eq!(euid, "Effective uid: 0\n");

    // busybox: a shell and the applets the tests use.
    let (root, config) = unpack(&names.busybox);
    let out = sh(
        &root,
        &config,
        "echo hi | wc -c; env | grep -c PATH; nslookup 2>&1 | head -1; wget --help 2>&1 | head -1",
    );
    assert!(out.starts_with("3\n1\n"), "{out}");
    // Variables named from ConfigMap keys reach the commands of `sh -c` (the conformance
    // tests' `sh -c env`), names that are no shell identifiers too.
    let env = in_image(
        &root,
        &config,
        None,
        &[
            "/bin/env",
            "data-1=value-1",
            "#@!data-1=x",
            "/bin/sh",
            "-c",
            "env",
        ],
    );
    assert!(
        env.lines().any(|l| l == "data-1=value-1") && env.lines().any(|l| l == "#@!data-1=x"),
        "{env}"
    );
    // The shell is busybox's ash: the read-only root filesystem test expects its message.
    let refused = in_image(
        &root,
        &config,
        None,
        &[
            "/bin/sh",
            "-c",
            "{ echo test > /no/such/file; } 2>&1; readlink /bin/sh",
        ],
    );
    assert_eq!(
        refused,
        "/bin/sh: can't create /no/such/file: nonexistent directory\nbusybox\n"
    );

    // nginx: its configuration is valid and names the welcome page's root.
    for reference in [&names.nginx, &names.nginx_new] {
        let (root, config) = unpack(reference);
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["nginx", "-g", "daemon off;"])
        );
        // Its logs go to /dev/stdout and /dev/stderr, as in a container: the machine's /dev
        // and /proc, bound in a mount namespace of its own.
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::create_dir_all(root.join("proc")).unwrap();
        let script = format!(
            "mount --rbind /dev {r}/dev && mount --rbind /proc {r}/proc && chroot {r} /bin/sh -c \
             'nginx -t 2>&1; grep -q \"Welcome to nginx\" /usr/share/nginx/html/index.html && echo welcome'",
            r = root.display()
        );
        let out = output(Command::new("unshare").args(["--mount", "sh", "-c", &script]));
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("test is successful"), "{reference}: {out}");
        assert!(
            out.ends_with("welcome\n"),
            "{reference}: no welcome page: {out}"
        );
    }

    // glibc-dns-testing: the DNS probes' dig and glibc's getent, under bash as sh.
    let glibc = names.glibc_dns_testing.as_deref().expect("v1.37 has one");
    let (root, config) = unpack(glibc);
    let out = sh(&root, &config, "set -e; dig -v 2>&1; getent passwd root; seq 1 2; /coredns -version | head -1; echo $BASH_VERSION");
    for needle in ["DiG 9.", "root:x:0:0", "1\n2\n", "CoreDNS-", "5."] {
        assert!(out.contains(needle), "{glibc}: no {needle} in:\n{out}");
    }

    // etcd and the sample-apiserver: their programs run.
    let (root, config) = unpack(&names.etcd);
    let out = in_image(&root, &config, None, &["/usr/local/bin/etcd", "--version"]);
    assert!(
        out.contains(&format!("etcd Version: {}", profile.etcd)),
        "{out}"
    );
    let (root, config) = unpack(&names.sample_apiserver);
    let out = sh(&root, &config, "/sample-apiserver --help 2>&1 | head -3");
    assert!(
        out.contains("sample-apiserver") || out.contains("Usage"),
        "{out}"
    );
}

/// The image of the add-on image row `key`.
fn addon(key: &str) -> Image {
    Image::Addon(
        k8s_boot::addons::images()
            .find(|i| i.key == key)
            .expect("an add-on image row"),
    )
}

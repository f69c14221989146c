//! The image configuration: what runs, as whom, on which platform, over which layers.

use serde::Serialize;

use super::layer::Layer;

/// The runtime part of an image config. Empty fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// GOARCH spelling: `amd64`, `arm64`. Default: this machine's.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `65535:65535`, `65532`, `node`, ...
    pub user: String,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub working_dir: String,
}

impl Default for ImageConfig {
    fn default() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().into(),
            os: "linux".into(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: String::new(),
            env: Vec::new(),
            working_dir: String::new(),
        }
    }
}

/// This machine's architecture as OCI (GOARCH) names it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    architecture: &'a str,
    os: &'a str,
    config: RuntimeJson<'a>,
    rootfs: RootfsJson<'a>,
}

#[derive(Serialize)]
struct RuntimeJson<'a> {
    #[serde(rename = "User", skip_serializing_if = "str::is_empty")]
    user: &'a str,
    #[serde(rename = "Env", skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(rename = "Entrypoint", skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(rename = "Cmd", skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(rename = "WorkingDir", skip_serializing_if = "str::is_empty")]
    working_dir: &'a str,
}

#[derive(Serialize)]
struct RootfsJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

/// The image config JSON (`application/vnd.oci.image.config.v1+json`) for `layers`, bottom first.
pub fn config_json(config: &ImageConfig, layers: &[Layer]) -> Vec<u8> {
    let json = ConfigJson {
        architecture: &config.architecture,
        os: &config.os,
        config: RuntimeJson {
            user: &config.user,
            env: &config.env,
            entrypoint: &config.entrypoint,
            cmd: &config.cmd,
            working_dir: &config.working_dir,
        },
        rootfs: RootfsJson {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
    };
    serde_json::to_vec(&json).expect("config JSON serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_fields_are_left_out() {
        let json = config_json(&ImageConfig::default(), &[]);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(
                r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#,
                host_architecture()
            )
        );
    }
}

//! Tiny test images: OCI layouts built with umoci, pushed with skopeo.

use std::io::Read;
use std::path::Path;

use super::{TempDir, run};

/// An OCI image layout built with umoci: one layer per entry of `layers` (each a list of
/// `(path inside the image, file content)`), with `env` and `cmd` in its config.
pub struct TestImage {
    pub dir: TempDir,
    pub tag: String,
}

impl TestImage {
    pub fn build(layers: &[&[(&str, &str)]], env: &[&str], cmd: &[&str]) -> Self {
        let dir = TempDir::new("image");
        let layout = dir.join("oci");
        let image = format!("{}:v1", layout.display());
        run("umoci", &["init", "--layout", &layout.to_string_lossy()]);
        run("umoci", &["new", "--image", &image]);
        for (i, files) in layers.iter().enumerate() {
            let src = dir.join(format!("layer{i}"));
            for (path, content) in files.iter() {
                let file = src.join(path.trim_start_matches('/'));
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
                }
                std::fs::write(&file, content)
                    .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
            }
            run(
                "umoci",
                &["insert", "--image", &image, &src.to_string_lossy(), "/"],
            );
        }
        let mut args = vec!["config".to_string(), "--image".to_string(), image.clone()];
        for e in env {
            args.extend(["--config.env".to_string(), e.to_string()]);
        }
        for c in cmd {
            args.extend(["--config.cmd".to_string(), c.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("umoci", &args);
        Self {
            dir,
            tag: "v1".to_string(),
        }
    }

    /// Add a layer holding one file of `size` random (incompressible) bytes at `path`.
    pub fn add_random_layer(&self, path: &str, size: usize) {
        let src = self
            .dir
            .join(format!("random-{}", uuid::Uuid::new_v4().simple()));
        let file = src.join(path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        let mut data = vec![0u8; size];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut data))
            .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
        std::fs::write(&file, data).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let image = format!("{}:{}", self.dir.join("oci").display(), self.tag);
        run(
            "umoci",
            &["insert", "--image", &image, &src.to_string_lossy(), "/"],
        );
    }

    /// `skopeo copy` to `docker://<host>/<repo>` (plain HTTP); `all` pushes an index as is.
    pub fn push(&self, host: &str, repo: &str, all: bool, creds: Option<&str>) {
        self.push_compressed(host, repo, all, creds, None);
    }

    /// `push`, with the layers recompressed as `format` (`zstd`, `gzip`) on the way, so the registry
    /// serves them with that media type.
    pub fn push_compressed(
        &self,
        host: &str,
        repo: &str,
        all: bool,
        creds: Option<&str>,
        format: Option<&str>,
    ) {
        let src = format!("oci:{}:{}", self.dir.join("oci").display(), self.tag);
        let dst = format!("docker://{host}/{repo}");
        let mut args = vec!["--insecure-policy", "copy", "--dest-tls-verify=false"];
        if let Some(f) = format {
            args.extend(["--dest-compress", "--dest-compress-format", f]);
        }
        if all {
            args.push("--all");
        }
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend([src.as_str(), dst.as_str()]);
        run("skopeo", &args);
    }

    /// Replace the tag's manifest by an OCI index that lists it as linux/amd64 next to a linux/arm64
    /// entry pointing at the same manifest (so only the platform choice decides). Returns the index digest.
    pub fn wrap_in_index(&mut self) -> String {
        use sha2::Digest;
        let layout = self.dir.join("oci");
        let index_path = layout.join("index.json");
        let mut top: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&index_path).unwrap_or_else(|e| panic!("index.json: {e}")),
        )
        .unwrap_or_else(|e| panic!("index.json: {e}"));
        let entry = top["manifests"][0].clone();
        let mut manifest = entry.clone();
        manifest.as_object_mut().map(|m| m.remove("annotations"));
        let mut amd64 = manifest.clone();
        amd64["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
        let mut arm64 = manifest.clone();
        arm64["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux"});
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [arm64, amd64],
        });
        let bytes = serde_json::to_vec(&index).unwrap_or_else(|e| panic!("{e}"));
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        std::fs::write(layout.join(format!("blobs/sha256/{hex}")), &bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        top["manifests"][0] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
            "annotations": entry["annotations"],
        });
        std::fs::write(
            &index_path,
            serde_json::to_vec(&top).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        format!("sha256:{hex}")
    }

    /// The image manifest of the tag (following an index), as JSON.
    pub fn manifest(&self) -> serde_json::Value {
        let layout = self.dir.join("oci");
        let read = |digest: &str| -> serde_json::Value {
            let p = layout.join(format!(
                "blobs/sha256/{}",
                digest.trim_start_matches("sha256:")
            ));
            serde_json::from_slice(
                &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let top = read_json(&layout.join("index.json"));
        let mut m = read(top["manifests"][0]["digest"].as_str().unwrap_or_default());
        while m.get("manifests").is_some() {
            let last = m["manifests"]
                .as_array()
                .and_then(|a| a.last())
                .cloned()
                .unwrap_or_default();
            m = read(last["digest"].as_str().unwrap_or_default());
        }
        m
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{e}"))
}

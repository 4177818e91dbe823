//! The emergency override and its append-only audit log.
//!
//! An override bypasses the blocking verdict of one commit only, never a branch or a dirty
//! tree, and only with an approval: a reason, an approver who is not the commit's author, and
//! an expiry no longer than `override.max_expiry`. Locally the approval is a `grant` entry
//! made with `cargo xtask gates override`, marked unverified: nothing checks who typed it.
//! A run whose verdict blocks looks for a live grant of its commit and, when it uses one,
//! appends a `use` entry naming the gates and findings it bypassed.
//!
//! Each line of the log is `{"prev": …, "hash": …, "event": {…}}`, where `hash` is the
//! SHA-256 of `prev`, a newline and the event's canonical JSON (sorted keys), and `prev` is
//! the previous line's `hash` (64 zeros for the first). [`verify`] recomputes the chain, so an
//! edited, removed or reordered entry breaks it at that line. Cutting entries off the end
//! leaves a shorter valid chain; the head hash that `audit verify` prints, and that each run
//! records in its report, is what to compare against.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An approval to bypass one commit's blocking verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub commit: String,
    pub reason: String,
    pub approver: String,
    /// The commit's author, whom the approver must not be.
    pub author: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// `local` (unverified) or `github` (read through the API).
    pub source: String,
    pub verified: bool,
    pub granted_by: String,
    pub at: String,
}

/// A run that passed because of a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub commit: String,
    pub at: String,
    pub by: String,
    pub gates: Vec<String>,
    /// `rule fingerprint` of every blocking finding bypassed.
    pub findings: Vec<String>,
    pub reason: String,
    pub approver: String,
    pub expires_at: String,
    pub source: String,
    pub verified: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    Grant(Grant),
    Use(Use),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prev: String,
    hash: String,
    event: serde_json::Value,
}

fn chain_hash(prev: &str, event: &serde_json::Value) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    // `serde_json::Value` keeps object keys sorted: the same event always hashes the same.
    hasher.update(event.to_string().as_bytes());
    crate::tools::hex(&hasher.finalize())
}

/// The log checked from its first line to its last.
#[derive(Debug)]
pub struct Verified {
    pub events: Vec<Event>,
    /// The last entry's hash (64 zeros for an empty log).
    pub head: String,
}

/// Checks the whole chain. A missing log is an empty one.
pub fn verify(log: &Path) -> anyhow::Result<Verified> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", log.display()));
        }
    };
    let mut head = GENESIS.to_owned();
    let mut events = Vec::new();
    for (index, text) in text.lines().enumerate() {
        let number = index + 1;
        let broken = |problem: &str| {
            anyhow::anyhow!(
                "{}:{number}: the audit log is broken here: {problem}; entries were edited, removed or reordered",
                log.display()
            )
        };
        let line: Line = serde_json::from_str(text).map_err(|_| broken("not an audit entry"))?;
        if line.prev != head {
            return Err(broken("it does not follow the entry before it"));
        }
        if chain_hash(&line.prev, &line.event) != line.hash {
            return Err(broken("its content does not match its hash"));
        }
        let event: Event =
            serde_json::from_value(line.event).map_err(|_| broken("an event of unknown shape"))?;
        events.push(event);
        head = line.hash;
    }
    Ok(Verified { events, head })
}

/// Appends `event` after checking the chain, under an exclusive lock so that concurrent runs
/// do not fork it. Returns the new head.
pub fn append(log: &Path, event: &Event) -> anyhow::Result<String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("failed to open {}", log.display()))?;
    file.lock().with_context(|| format!("failed to lock {}", log.display()))?;
    let verified = verify(log).context("refusing to append to a broken audit log")?;
    let event = serde_json::to_value(event).context("failed to encode the audit entry")?;
    let hash = chain_hash(&verified.head, &event);
    let line = Line { prev: verified.head, hash: hash.clone(), event };
    let mut text = serde_json::to_string(&line).context("failed to encode the audit entry")?;
    text.push('\n');
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to append to {}", log.display()))?;
    file.sync_data().with_context(|| format!("failed to flush {}", log.display()))?;
    Ok(hash)
}

/// Who a commit's author is: name and email.
#[derive(Clone, Debug)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// The author of `commit`, from git.
    pub fn of_commit(sh: &xshell::Shell, commit: &str) -> anyhow::Result<Author> {
        let text = xshell::cmd!(sh, "git log -1 --format=%an%n%ae {commit}")
            .quiet()
            .read()
            .with_context(|| format!("failed to read the author of {commit}"))?;
        let (name, email) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        Ok(Author { name: name.trim().to_owned(), email: email.trim().to_owned() })
    }

    /// Whether `who` names this author: by name, by email, or as `Name <email>`.
    pub fn is(&self, who: &str) -> bool {
        let who = who.trim();
        let (name, email) = match who.rsplit_once('<') {
            Some((name, email)) => (name.trim(), email.trim_end_matches('>').trim()),
            None => (who, who),
        };
        let same = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
        [name, email, who].iter().any(|part| same(part, &self.name) || same(part, &self.email))
    }
}

/// The checks an approval must pass before it is recorded; each refusal says why.
pub fn check_approval(
    author: &Author,
    approver: &str,
    reason: &str,
    expiry: Duration,
    max_expiry: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(!reason.trim().is_empty(), "an override needs a reason: give `--reason`");
    anyhow::ensure!(
        !approver.trim().is_empty(),
        "an override needs an approver: give `--approver`"
    );
    anyhow::ensure!(
        !author.is(approver),
        "self-approval refused: `{approver}` wrote the commit ({} <{}>); another maintainer must approve",
        author.name,
        author.email
    );
    anyhow::ensure!(
        !expiry.is_zero(),
        "an override must last a while: give `--expires`, such as 2h"
    );
    anyhow::ensure!(
        expiry <= max_expiry,
        "an override may last at most {} (`override.max_expiry`), not {}",
        hours(max_expiry),
        hours(expiry)
    );
    Ok(())
}

/// Re-checks a local grant read back from the log when a run is about to use it: anyone can
/// append to the log and recompute the chain, so nothing in the entry is taken on trust. Only
/// local grants count (one from GitHub is used in the run that read it from the API), and
/// they are never verified; the approver must not be the commit's author, and the expiry must
/// lie within `max_expiry` of both the grant and now.
pub fn recheck_local(
    mut grant: Grant,
    author: &Author,
    max_expiry: Duration,
    now: SystemTime,
) -> Result<Grant, String> {
    if grant.source != "local" {
        return Err(format!(
            "the log holds a `{}` grant for {}: only the API decides those, so it is not used",
            grant.source, grant.commit
        ));
    }
    grant.verified = false;
    if author.is(&grant.approver) {
        return Err(format!(
            "self-approval refused: `{}` wrote {} ({} <{}>)",
            grant.approver, grant.commit, author.name, author.email
        ));
    }
    let expires = humantime::parse_rfc3339(&grant.expires_at)
        .map_err(|_| format!("the override for {} has an unreadable expiry", grant.commit))?;
    let granted = humantime::parse_rfc3339(&grant.at).unwrap_or(now);
    let too_long = |from: SystemTime| expires.duration_since(from).is_ok_and(|d| d > max_expiry);
    if too_long(granted) || too_long(now) {
        return Err(format!(
            "the override for {} runs until {}, beyond `override.max_expiry` ({})",
            grant.commit,
            grant.expires_at,
            hours(max_expiry)
        ));
    }
    Ok(grant)
}

/// The latest grant for exactly `commit`, if it is still live at `now`; otherwise why not.
pub fn live_grant(events: &[Event], commit: &str, now: SystemTime) -> Result<Grant, String> {
    let Some(grant) = events.iter().rev().find_map(|event| match event {
        Event::Grant(grant) if grant.commit == commit => Some(grant.clone()),
        _ => None,
    }) else {
        return Err(format!("no override was granted for commit {commit}"));
    };
    let expires = humantime::parse_rfc3339(&grant.expires_at)
        .map_err(|_| format!("the override for {commit} has an unreadable expiry"))?;
    if now >= expires {
        return Err(format!(
            "the override for {commit} approved by {} expired at {}",
            grant.approver, grant.expires_at
        ));
    }
    Ok(grant)
}

/// A duration as meshgate.toml writes it: `24h`, or `90m`, else seconds.
fn hours(duration: Duration) -> String {
    match duration.as_secs() {
        secs if secs % 3600 == 0 => format!("{}h", secs / 3600),
        secs if secs % 60 == 0 => format!("{}m", secs / 60),
        secs => format!("{secs}s"),
    }
}

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_log(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshgate-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("audit.jsonl")
    }

    fn grant(commit: &str, expires_at: &str) -> Event {
        Event::Grant(Grant {
            commit: commit.into(),
            reason: "hotfix for the outage".into(),
            approver: "bob".into(),
            author: "alice <alice@example.com>".into(),
            expires_at: expires_at.into(),
            source: "local".into(),
            verified: false,
            granted_by: "bob".into(),
            at: "2026-12-04T10:00:00Z".into(),
        })
    }

    #[test]
    fn the_chain_verifies_and_any_one_byte_edit_breaks_it() {
        let log = temp_log("edit");
        append(&log, &grant("aaaa", "2026-12-04T14:00:00Z")).unwrap();
        append(&log, &grant("bbbb", "2026-12-04T14:00:00Z")).unwrap();
        let head = append(&log, &grant("cccc", "2026-12-04T14:00:00Z")).unwrap();
        let verified = verify(&log).unwrap();
        assert_eq!(verified.events.len(), 3);
        assert_eq!(verified.head, head);

        let original = std::fs::read(&log).unwrap();
        // Every single-byte change inside the second entry's event is caught.
        let second = original.iter().position(|b| *b == b'\n').unwrap() + 1;
        let event =
            second + original[second..].windows(8).position(|w| w == b"\"event\":").unwrap();
        for offset in [event + 20, event + 40, event + 60] {
            let mut edited = original.clone();
            edited[offset] ^= 0x01;
            std::fs::write(&log, &edited).unwrap();
            let error = verify(&log).unwrap_err().to_string();
            assert!(error.contains("audit.jsonl:2:"), "{error}");
        }
        // Removing or reordering entries is caught too.
        let lines: Vec<&str> = std::str::from_utf8(&original).unwrap().lines().collect();
        std::fs::write(&log, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(verify(&log).unwrap_err().to_string().contains(":2:"));
        std::fs::write(&log, format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2])).unwrap();
        assert!(verify(&log).unwrap_err().to_string().contains(":1:"));
        // And nothing is appended to a broken log.
        assert!(append(&log, &grant("dddd", "2026-12-04T14:00:00Z")).is_err());
    }

    #[test]
    fn approvals_are_refused_for_the_author_without_reason_or_beyond_the_maximum() {
        let author = Author { name: "Alice".into(), email: "alice@example.com".into() };
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert!(check_approval(&author, "bob", "outage", hours(4), hours(24)).is_ok());
        let error = check_approval(&author, "ALICE@example.com", "outage", hours(4), hours(24))
            .unwrap_err()
            .to_string();
        assert!(error.contains("self-approval refused"), "{error}");
        assert!(check_approval(&author, "alice", "outage", hours(4), hours(24)).is_err());
        for spelled in
            ["Alice <alice@example.com>", "Bob <ALICE@example.com>", "alice <bob@example.com>"]
        {
            assert!(
                check_approval(&author, spelled, "outage", hours(4), hours(24)).is_err(),
                "{spelled}"
            );
        }
        assert!(
            check_approval(&author, "Bob <bob@example.com>", "outage", hours(4), hours(24)).is_ok()
        );
        assert!(check_approval(&author, "bob", " ", hours(4), hours(24)).is_err());
        let error =
            check_approval(&author, "bob", "outage", hours(48), hours(24)).unwrap_err().to_string();
        assert!(error.contains("at most 24h"), "{error}");
    }

    #[test]
    fn grants_read_back_from_the_log_are_checked_again() {
        let author = Author { name: "Alice".into(), email: "alice@example.com".into() };
        let now = humantime::parse_rfc3339("2026-12-04T12:00:00Z").unwrap();
        let day = Duration::from_secs(86_400);
        let Event::Grant(grant) = grant("aaaa", "2026-12-04T14:00:00Z") else { unreachable!() };
        let ok = recheck_local(grant.clone(), &author, day, now).unwrap();
        assert!(!ok.verified);
        let forged = Grant { source: "github".into(), verified: true, ..grant.clone() };
        assert!(recheck_local(forged, &author, day, now).unwrap_err().contains("only the API"));
        let own = Grant { approver: "Alice <alice@example.com>".into(), ..grant.clone() };
        assert!(recheck_local(own, &author, day, now).unwrap_err().contains("self-approval"));
        let long = Grant { expires_at: "2036-01-01T00:00:00Z".into(), ..grant };
        assert!(recheck_local(long, &author, day, now).unwrap_err().contains("max_expiry"));
    }

    #[test]
    fn a_grant_covers_its_commit_until_it_expires() {
        let events = vec![grant("aaaa", "2026-12-04T14:00:00Z")];
        let at = |time: &str| humantime::parse_rfc3339(time).unwrap();
        assert!(live_grant(&events, "aaaa", at("2026-12-04T13:59:59Z")).is_ok());
        let expired = live_grant(&events, "aaaa", at("2026-12-04T14:00:00Z")).unwrap_err();
        assert!(expired.contains("expired"), "{expired}");
        let other = live_grant(&events, "bbbb", at("2026-12-04T12:00:00Z")).unwrap_err();
        assert!(other.contains("no override was granted for commit bbbb"), "{other}");
    }
}

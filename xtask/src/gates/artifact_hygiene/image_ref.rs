//! Image references as the engine reads them: `[registry[:port]/]path[:tag][@digest]`.
//!
//! The tag is taken from the last path component only, so `host:5000/app` has a registry
//! port and no tag, and a digest after `@` pins the image whatever tag precedes it.

/// What a reference pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pin {
    /// `scratch`: no image at all.
    Scratch,
    /// A digest (`@sha256:…`), with or without a tag.
    Digest,
    /// A tag other than `latest`, without a digest.
    Tag(String),
    /// No tag (which the engine reads as `latest`) or `latest` itself.
    Latest { explicit: bool },
}

/// Reads how `reference` is pinned; `None` for text that is no image reference (empty,
/// white space, or a digest that is not `algorithm:hex`).
pub(crate) fn pin(reference: &str) -> Option<Pin> {
    let reference = reference.trim();
    if reference.is_empty() || reference.contains(char::is_whitespace) {
        return None;
    }
    if reference.eq_ignore_ascii_case("scratch") {
        return Some(Pin::Scratch);
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':')?;
        let valid =
            !algorithm.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        return valid.then_some(Pin::Digest);
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => Some(Pin::Latest { explicit: true }),
        Some((_, "")) => None,
        Some((_, tag)) => Some(Pin::Tag(tag.to_owned())),
        None => Some(Pin::Latest { explicit: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_registry_port_is_not_a_tag() {
        assert_eq!(pin("registry.local:5000/team/app"), Some(Pin::Latest { explicit: false }));
        assert_eq!(pin("registry.local:5000/team/app:1.4.2"), Some(Pin::Tag("1.4.2".into())));
        assert_eq!(pin("localhost:5000/app:latest"), Some(Pin::Latest { explicit: true }));
    }

    #[test]
    fn a_digest_pins_with_or_without_a_tag() {
        assert_eq!(pin(&format!("example/app@sha256:{HEX}")), Some(Pin::Digest));
        assert_eq!(pin(&format!("example/app:1.4.2@sha256:{HEX}")), Some(Pin::Digest));
        assert_eq!(pin(&format!("host:5000/app:latest@sha256:{HEX}")), Some(Pin::Digest));
        assert_eq!(pin("example/app@sha256:zz"), None);
    }

    #[test]
    fn scratch_untagged_and_latest() {
        assert_eq!(pin("scratch"), Some(Pin::Scratch));
        assert_eq!(pin("postgres"), Some(Pin::Latest { explicit: false }));
        assert_eq!(pin("alpine:latest"), Some(Pin::Latest { explicit: true }));
        assert_eq!(pin("rust:1.82-slim"), Some(Pin::Tag("1.82-slim".into())));
        assert_eq!(pin(""), None);
        assert_eq!(pin("app:"), None);
    }
}

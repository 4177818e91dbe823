//! What counts as a secret: private key blocks, tokens with a provider's well-known prefix,
//! and keys whose name says they hold a password, token or key.
//!
//! Tokens are recognised by prefix and shape (length and alphabet), so prose that mentions a
//! prefix is not a token. Documentation placeholders (`ghp_xxxx…`, AWS's `…EXAMPLE` keys) are
//! not reported as live tokens. Secret-like *keys* are another matter: there a placeholder
//! such as `change_me` is reported too, since it satisfies a `${VAR:?}` guard and ships.

/// A token found in a line: what it is and where it starts (0-based byte column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: &'static str,
    pub column: usize,
}

/// Prefix, what it is, the body's minimum length and its alphabet.
type TokenShape = (&'static str, &'static str, usize, fn(u8) -> bool);

const TOKENS: &[TokenShape] = &[
    ("ghp_", "GitHub personal access token", 36, alnum),
    ("gho_", "GitHub OAuth token", 36, alnum),
    ("ghu_", "GitHub user-to-server token", 36, alnum),
    ("ghs_", "GitHub server-to-server token", 36, alnum),
    ("ghr_", "GitHub refresh token", 36, alnum),
    ("github_pat_", "GitHub fine-grained token", 40, word),
    ("glpat-", "GitLab personal access token", 20, dashed),
    ("xoxb-", "Slack bot token", 20, dashed),
    ("xoxa-", "Slack app token", 20, dashed),
    ("xoxp-", "Slack user token", 20, dashed),
    ("xoxr-", "Slack refresh token", 20, dashed),
    ("xoxs-", "Slack session token", 20, dashed),
    ("AKIA", "AWS access key id", 16, upper_alnum),
    ("ASIA", "AWS temporary access key id", 16, upper_alnum),
    ("sk_live_", "Stripe secret key", 24, alnum),
    ("rk_live_", "Stripe restricted key", 24, alnum),
    ("AIza", "Google API key", 35, dashed),
    ("npm_", "npm access token", 36, alnum),
    ("pypi-AgEIcHlwaS5vcmc", "PyPI upload token", 50, dashed),
];

fn alnum(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn dashed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn upper_alnum(byte: u8) -> bool {
    byte.is_ascii_uppercase() || byte.is_ascii_digit()
}

/// Where a line opens a private key block: a PEM `BEGIN` armour line whose label ends in
/// `PRIVATE KEY` (RSA, EC, OpenSSH, PKCS#8, encrypted).
pub(crate) fn private_key_at(line: &str) -> Option<usize> {
    let at = line.find("-----BEGIN ")?;
    let rest = &line[at + 11..];
    let end = rest.find("-----")?;
    rest[..end].ends_with("PRIVATE KEY").then_some(at)
}

/// The live-looking tokens in a line.
pub(crate) fn tokens(line: &str) -> Vec<Token> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    for (prefix, kind, min, alphabet) in TOKENS {
        let mut from = 0;
        while let Some(offset) = line[from..].find(prefix) {
            let start = from + offset;
            from = start + prefix.len();
            // A token starts a word: `xghp_…` or `MY_AKIA…` is something else.
            if start > 0 && word(bytes[start - 1]) {
                continue;
            }
            let body: &[u8] = &bytes[from..];
            let length = body.iter().take_while(|b| alphabet(**b)).count();
            if length < *min {
                continue;
            }
            let body = &line[from..from + length];
            if !is_placeholder(body) {
                found.push(Token { kind, column: start });
            }
        }
    }
    found.sort_by_key(|token| token.column);
    found
}

/// `xxxx…`, `0000…`, `…EXAMPLE…`, `your_token_here`: bodies written to show a shape.
fn is_placeholder(body: &str) -> bool {
    let mut distinct: Vec<char> = body.chars().map(|c| c.to_ascii_lowercase()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let upper = body.to_ascii_uppercase();
    distinct.len() <= 3
        || ["EXAMPLE", "PLACEHOLDER", "YOUR_", "REDACTED", "XXXXXXXX"]
            .iter()
            .any(|word| upper.contains(word))
}

/// Whether an environment key names a secret: a password, token, secret or private key,
/// and not a file, path or setting about one (`DB_PASSWORD_FILE`, `TOKEN_TTL`).
pub(crate) fn is_secret_key(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-', '.']).filter(|w| !w.is_empty()).collect();
    let Some(last) = words.last() else { return false };
    const NOT_A_VALUE: &[&str] = &[
        "FILE",
        "PATH",
        "DIR",
        "TTL",
        "LENGTH",
        "LEN",
        "EXPIRY",
        "EXPIRES",
        "URL",
        "URI",
        "HOST",
        "PORT",
        "NAME",
        "USER",
        "USERNAME",
        "ID",
        "TYPE",
        "HEADER",
        "ENABLED",
        "SIZE",
        "ALGORITHM",
        "METHOD",
        "MODE",
        "COMMAND",
        "CMD",
        "SCRIPT",
        "PROVIDER",
        "ENDPOINT",
    ];
    if NOT_A_VALUE.contains(last) {
        return false;
    }
    let joined = words.join("_");
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "PRIVATE_KEY", "API_KEY", "APIKEY", "ACCESS_KEY"]
        .iter()
        .any(|marker| joined.contains(marker))
        || words.iter().any(|w| matches!(*w, "PASS" | "PWD" | "CREDENTIALS" | "AUTHKEY"))
}

/// Whether a value is a switch (`true`, `off`, …): a setting about a secret, never one.
pub(crate) fn is_switch(value: &str) -> bool {
    ["true", "false", "yes", "no", "on", "off"]
        .iter()
        .any(|word| value.trim().eq_ignore_ascii_case(word))
}

/// Values that look like a placeholder rather than a real secret, for the message only.
pub(crate) fn looks_like_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    ["change", "example", "placeholder", "secret", "password", "todo", "xxx", "your", "dummy"]
        .iter()
        .any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test tokens are assembled at run time, so this file holds none for a scanner to find.
    fn token(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    #[test]
    fn provider_prefixes_with_their_shape_are_tokens() {
        let body36 = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
        let line = format!("token = \"{}\"", token("gh", &format!("p_{body36}")));
        assert_eq!(tokens(&line), [Token { kind: "GitHub personal access token", column: 9 }]);
        let aws = token("AK", "IAQ3EGRZ7LMNPT4VW2XY");
        assert_eq!(tokens(&aws).len(), 1);
        let slack = token("xox", "b-1234567890-abcdefghij");
        assert_eq!(tokens(&slack).len(), 1);
        let gitlab = token("glp", "at-Zx8Yw7Vu6Ts5Rq4Po3Nm");
        assert_eq!(tokens(&gitlab).len(), 1);
    }

    #[test]
    fn prose_short_bodies_and_documentation_placeholders_are_not_tokens() {
        assert!(tokens("tokens start with ghp_ or glpat-").is_empty());
        assert!(tokens(&token("gh", &format!("p_{}", "x".repeat(36)))).is_empty());
        assert!(tokens(&token("AKIA", "IOSFODNN7EXAMPLE")).is_empty());
        assert!(tokens(&token("myg", "hp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")).is_empty());
    }

    #[test]
    fn private_key_blocks_but_not_public_ones() {
        let armour = |label: &str| format!("-----{} {label}-----", "BEGIN");
        assert!(private_key_at(&armour("OPENSSH PRIVATE KEY")).is_some());
        assert_eq!(private_key_at(&format!("  {}", armour("RSA PRIVATE KEY"))), Some(2));
        assert!(private_key_at(&armour("PUBLIC KEY")).is_none());
        assert!(private_key_at(&armour("CERTIFICATE")).is_none());
    }

    #[test]
    fn secret_keys_by_name() {
        for key in
            ["SECRET_KEY", "DB_PASSWORD", "JWT_SECRET", "GITHUB_TOKEN", "MYSQL_ROOT_PASSWORD"]
        {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["PUBLIC_URL", "POSTGRES_PASSWORD_FILE", "TOKEN_TTL", "PASSWORD_LENGTH", "LEVEL"]
        {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}

//! `.env` files read the way Compose v2 reads them.
//!
//! `KEY=value`, `export KEY=value`, `KEY: value`; a bare `KEY` takes the process environment.
//! Unquoted values end at the line's end and lose a trailing comment only when `#` follows
//! white space, so `KEY=   # text` keeps `# text` as its value and `URL=a#frag` keeps `#frag`.
//! Single quotes are literal; double quotes expand `\n`, `\r` and variables. Variables expand
//! with the same grammar as the Compose file, from earlier keys and the environment.

use super::interpolate::{Usage, interpolate};

/// One assignment with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    pub line: u32,
    /// Whether the value was written in quotes.
    pub quoted: bool,
}

/// A malformed line.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub message: String,
}

/// Parses `text`; `lookup` gives the process environment, which wins over the file.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Assignment>, ParseError> {
    let mut assignments: Vec<Assignment> = Vec::new();
    // A byte-order mark some editors write is not part of the first name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut index = 0;
    while index < lines.len() {
        let line_number = index as u32 + 1;
        let line = lines[index].trim_start();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let key_end = line.find(['=', ':']).unwrap_or(line.len());
        let key = line[..key_end].trim_end();
        // Compose's reader also takes `-`, `[` and `]` in names.
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']');
        if let Some(bad) = key.chars().find(|c| !allowed(*c)) {
            let message = format!("unexpected character {bad:?} in variable name {key:?}");
            return Err(ParseError { line: line_number, message });
        }
        if key_end == line.len() {
            // A bare name passes the variable through from the environment.
            if let Some(value) = lookup(key) {
                assignments.push(Assignment {
                    key: key.into(),
                    value,
                    line: line_number,
                    quoted: false,
                });
            }
            continue;
        }
        let raw = line[key_end + 1..].trim_start_matches([' ', '\t']);
        let known = |name: &str| {
            lookup(name).or_else(|| {
                assignments.iter().rev().find(|a| a.key == name).map(|a| a.value.clone())
            })
        };
        let (value, quoted) = match raw.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                // A quoted value may run over several lines until its closing quote.
                let mut body = raw[1..].to_owned();
                let close = loop {
                    if let Some(at) = find_closing(&body, quote) {
                        break at;
                    }
                    let Some(next) = lines.get(index) else {
                        let message = format!("unterminated quoted value for {key}");
                        return Err(ParseError { line: line_number, message });
                    };
                    body.push('\n');
                    body.push_str(next);
                    index += 1;
                };
                let body = &body[..close];
                let value = if quote == '"' {
                    let unescaped =
                        body.replace("\\n", "\n").replace("\\r", "\r").replace("\\\"", "\"");
                    expand(&unescaped, &known)
                } else {
                    body.to_owned()
                };
                (value, true)
            }
            _ => {
                let value = raw.split_once(" #").map_or(raw, |(before, _)| before);
                let value = value.split_once("\t#").map_or(value, |(before, _)| before);
                (expand(value.trim_end(), &known), false)
            }
        };
        let value = lookup(key).unwrap_or(value);
        assignments.push(Assignment { key: key.into(), value, line: line_number, quoted });
    }
    Ok(assignments)
}

fn find_closing(body: &str, quote: char) -> Option<usize> {
    let mut previous = None;
    for (at, c) in body.char_indices() {
        if c == quote && previous != Some('\\') {
            return Some(at);
        }
        previous = Some(c);
    }
    None
}

/// Expands variables; a malformed reference is kept as written, as Compose does for `.env`.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    interpolate(text, lookup, &mut Usage::default()).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text, &|_| None).unwrap().into_iter().map(|a| (a.key, a.value)).collect()
    }

    #[test]
    fn reads_comments_as_compose_does() {
        let text = "SECRET_KEY=change_me\nDB_PASSWORD=postgres   # local only\n\
                    JWT_SECRET=   # generate with: openssl rand -hex 32\n\
                    PUBLIC_URL=http://localhost:8080#frag\n";
        assert_eq!(
            values(text),
            [
                ("SECRET_KEY".into(), "change_me".into()),
                ("DB_PASSWORD".into(), "postgres".into()),
                ("JWT_SECRET".into(), "# generate with: openssl rand -hex 32".into()),
                ("PUBLIC_URL".into(), "http://localhost:8080#frag".into()),
            ]
        );
    }

    #[test]
    fn handles_quotes_export_and_expansion() {
        let text = "export A=1\nB=\"x ${A} \\n y\"\nC='${A}'\nD: two words\nE=\"multi\nline\"\n";
        assert_eq!(
            values(text),
            [
                ("A".into(), "1".into()),
                ("B".into(), "x 1 \n y".into()),
                ("C".into(), "${A}".into()),
                ("D".into(), "two words".into()),
                ("E".into(), "multi\nline".into()),
            ]
        );
    }

    #[test]
    fn the_environment_wins_and_bare_names_inherit() {
        let lookup = |name: &str| (name == "A" || name == "B").then(|| "env".to_owned());
        let parsed = parse("A=file\nB\nC\n", &lookup).unwrap();
        let pairs: Vec<(&str, &str)> =
            parsed.iter().map(|a| (a.key.as_str(), a.value.as_str())).collect();
        assert_eq!(pairs, [("A", "env"), ("B", "env")]);
    }

    #[test]
    fn takes_the_names_and_byte_order_mark_compose_takes() {
        let text = "\u{feff}MY-VAR=1\nlist[0]=a\nx.y=b\n";
        let expected = [("MY-VAR", "1"), ("list[0]", "a"), ("x.y", "b")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(values(text), expected);
    }

    #[test]
    fn reports_bad_names_and_unterminated_quotes_with_their_line() {
        assert_eq!(parse("A=1\nB$C=2\n", &|_| None).unwrap_err().line, 2);
        assert_eq!(parse("A=\"open\n", &|_| None).unwrap_err().line, 1);
    }
}

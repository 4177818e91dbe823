//! Variable interpolation as the Compose Specification defines it, never shell expansion.
//!
//! `$$` is a literal `$`; `$NAME` and `${NAME}` substitute; `${NAME:-default}`,
//! `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`, `${NAME:+alt}` and `${NAME+alt}`
//! behave as in Compose v2, with nesting inside the default. A `$` followed by anything else is
//! kept as it is (Compose v2; v1 rejected it), and an unclosed `${` is an error.

/// What one string's interpolation used.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Variables that were unset and had no default: Compose substitutes an empty string.
    pub unset: Vec<String>,
}

/// Interpolates `text`, looking variables up with `lookup`.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    usage: &mut Usage,
) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if c != '$' {
            out.push(c);
            index += 1;
            continue;
        }
        match chars.get(index + 1) {
            Some('$') => {
                out.push('$');
                index += 2;
            }
            Some('{') => {
                let close = matching_brace(&chars, index + 2).ok_or_else(|| {
                    format!("invalid interpolation format for {text:?}: `${{` is never closed")
                })?;
                let inner: String = chars[index + 2..close].iter().collect();
                out.push_str(&substitute_braced(&inner, text, lookup, usage)?);
                index = close + 1;
            }
            Some(&next) if next == '_' || next.is_ascii_alphabetic() => {
                let end = (index + 1..chars.len())
                    .find(|&at| !(chars[at] == '_' || chars[at].is_ascii_alphanumeric()))
                    .unwrap_or(chars.len());
                let name: String = chars[index + 1..end].iter().collect();
                out.push_str(&value_or_unset(&name, lookup, usage));
                index = end;
            }
            _ => {
                out.push('$');
                index += 1;
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing a `${` whose body starts at `start`.
fn matching_brace(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut index = start;
    while index < chars.len() {
        match chars[index] {
            '$' if chars.get(index + 1) == Some(&'$') => index += 1,
            '$' if chars.get(index + 1) == Some(&'{') => {
                depth += 1;
                index += 1;
            }
            '}' if depth == 0 => return Some(index),
            '}' => depth -= 1,
            _ => {}
        }
        index += 1;
    }
    None
}

fn value_or_unset(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    usage: &mut Usage,
) -> String {
    lookup(name).unwrap_or_else(|| {
        if !usage.unset.iter().any(|known| known == name) {
            usage.unset.push(name.to_owned());
        }
        String::new()
    })
}

/// Substitutes the body of one `${…}`.
fn substitute_braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    usage: &mut Usage,
) -> Result<String, String> {
    let name_end =
        inner.find(|c: char| !(c == '_' || c.is_ascii_alphanumeric())).unwrap_or(inner.len());
    let name = &inner[..name_end];
    let valid_name = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic());
    if !valid_name {
        return Err(format!(
            "invalid interpolation format for {whole:?}: `${{{inner}}}` names no variable"
        ));
    }
    let rest = &inner[name_end..];
    if rest.is_empty() {
        return Ok(value_or_unset(name, lookup, usage));
    }
    let value = lookup(name);
    let (operator, argument) = ["-", "?", "+"]
        .iter()
        .flat_map(|op| [(format!(":{op}"), true), ((*op).to_owned(), false)])
        .find_map(|(op, colon)| rest.strip_prefix(op.as_str()).map(|arg| ((op, colon), arg)))
        .ok_or_else(|| {
            format!(
                "invalid interpolation format for {whole:?}: unknown operator in `${{{inner}}}`"
            )
        })?;
    let ((op, colon), argument) = (operator, argument);
    // With a colon, an empty value counts as unset.
    let present = match &value {
        Some(text) => !(colon && text.is_empty()),
        None => false,
    };
    match op.trim_start_matches(':') {
        "-" if present => Ok(value.unwrap_or_default()),
        "-" => interpolate(argument, lookup, usage),
        "+" if present => interpolate(argument, lookup, usage),
        "+" => Ok(String::new()),
        "?" if present => Ok(value.unwrap_or_default()),
        _ => {
            let reason = interpolate(argument, lookup, usage)?;
            let reason = if reason.is_empty() { "it is required".to_owned() } else { reason };
            Err(format!("required variable {name} is missing a value: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&str, &str)]) -> (Result<String, String>, Vec<String>) {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut usage = Usage::default();
        let result = interpolate(text, &lookup, &mut usage);
        (result, usage.unset)
    }

    #[test]
    fn follows_the_compose_grammar() {
        assert_eq!(run("echo $$HOME", &[]).0.unwrap(), "echo $HOME");
        assert_eq!(run("{{ ${GREETING:-hello} }}", &[]).0.unwrap(), "{{ hello }}");
        assert_eq!(run("${OUTER:-${INNER:-fallback}}", &[]).0.unwrap(), "fallback");
        assert_eq!(run("${OUTER:-${INNER:-fallback}}", &[("INNER", "in")]).0.unwrap(), "in");
        assert_eq!(run("pa$", &[]).0.unwrap(), "pa$");
        assert_eq!(run("a$}b", &[]).0.unwrap(), "a$}b");
        assert_eq!(run("$A-$B_c", &[("A", "1"), ("B_c", "2")]).0.unwrap(), "1-2");
    }

    #[test]
    fn distinguishes_empty_from_unset() {
        assert_eq!(run("${X-d}", &[("X", "")]).0.unwrap(), "");
        assert_eq!(run("${X:-d}", &[("X", "")]).0.unwrap(), "d");
        assert_eq!(run("${X:+alt}", &[("X", "v")]).0.unwrap(), "alt");
        assert_eq!(run("${X:+alt}", &[("X", "")]).0.unwrap(), "");
        assert_eq!(run("${X+alt}", &[("X", "")]).0.unwrap(), "alt");
    }

    #[test]
    fn records_unset_variables_without_defaults() {
        let (result, unset) = run("${BIND_ADDR:-127.0.0.1}:${API_PORT}:8080", &[]);
        assert_eq!(result.unwrap(), "127.0.0.1::8080");
        assert_eq!(unset, ["API_PORT"]);
    }

    #[test]
    fn rejects_malformed_and_missing_required() {
        assert!(run("x${", &[]).0.unwrap_err().contains("never closed"));
        assert!(run("${}", &[]).0.unwrap_err().contains("names no variable"));
        assert!(run("${1X}", &[]).0.is_err());
        let error = run("${SECRET:?must be set}", &[]).0.unwrap_err();
        assert!(error.contains("SECRET") && error.contains("must be set"), "{error}");
        assert_eq!(run("${SECRET:?must be set}", &[("SECRET", "s")]).0.unwrap(), "s");
    }
}

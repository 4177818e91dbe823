//! A Dockerfile read into instructions, the way BuildKit reads it: parser directives
//! (`# escape=`), comment lines (also inside a continued instruction), line continuations,
//! heredocs (`RUN <<EOF … EOF`, several per instruction, `<<-` and quoted words), then stages
//! with `ARG`s declared before the first `FROM` substituted into base images.
//!
//! Only what the hygiene rules read is modelled. A malformed file gives a `SyntaxError` at
//! its line; the gate reports it and goes on with the other files.
//!
//! The `parse-dockerfile` crate (0.1.9) was tried in this module's place and reads most of
//! this well, but it rejects several heredocs in one instruction (`RUN <<A <<B …`), which
//! BuildKit accepts; that would be a false `hygiene/dockerfile-syntax`, so the small reader
//! here stays, with a test for each construct.

/// One instruction, with the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Instruction {
    /// Upper-case keyword: `FROM`, `RUN`, ….
    pub keyword: String,
    /// Everything after the keyword, continuation lines joined with a space.
    pub arguments: String,
    /// The bodies of the instruction's heredocs, in order.
    pub heredocs: Vec<String>,
    pub line: u32,
}

/// A `FROM` and what follows it up to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stage {
    /// The base as written.
    pub base_written: String,
    /// The base with build arguments substituted; `None` when a variable has no value.
    pub base: Option<String>,
    /// The variable that left the base unresolved.
    pub unresolved: Option<String>,
    pub name: Option<String>,
    /// The index of the earlier stage the base names, if it does.
    pub parent: Option<usize>,
    pub line: u32,
    pub instructions: Vec<Instruction>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: u32,
    pub message: String,
}

/// The instructions every Dockerfile frontend accepts.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Splits `text` into instructions.
pub(crate) fn instructions(text: &str) -> Result<Vec<Instruction>, SyntaxError> {
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_character(&lines);
    let mut result = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let start = index;
        let first = lines[index].trim();
        index += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Join continuation lines; comment and empty lines inside are dropped.
        let mut joined = String::new();
        let mut current = first.to_owned();
        loop {
            let trimmed = current.trim_end();
            match trimmed.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                    let mut next = None;
                    while index < lines.len() {
                        let candidate = lines[index].trim();
                        index += 1;
                        if candidate.is_empty() || candidate.starts_with('#') {
                            continue;
                        }
                        next = Some(candidate.to_owned());
                        break;
                    }
                    match next {
                        Some(next) => current = next,
                        None => break,
                    }
                }
                None => {
                    joined.push_str(trimmed);
                    break;
                }
            }
        }
        let line = start as u32 + 1;
        let (keyword, arguments) = match joined.split_once(char::is_whitespace) {
            Some((keyword, arguments)) => (keyword, arguments.trim()),
            None => (joined.as_str(), ""),
        };
        let keyword = keyword.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(SyntaxError { line, message: format!("unknown instruction `{keyword}`") });
        }
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (word, strip_tabs) in heredoc_words(arguments) {
                let mut body = String::new();
                let mut closed = false;
                while index < lines.len() {
                    let raw = lines[index];
                    index += 1;
                    let candidate = if strip_tabs { raw.trim_start_matches('\t') } else { raw };
                    if candidate == word {
                        closed = true;
                        break;
                    }
                    body.push_str(candidate);
                    body.push('\n');
                }
                if !closed {
                    return Err(SyntaxError {
                        line,
                        message: format!("heredoc `<<{word}` is never closed by a line `{word}`"),
                    });
                }
                heredocs.push(body);
            }
        }
        result.push(Instruction { keyword, arguments: arguments.to_owned(), heredocs, line });
    }
    Ok(result)
}

/// The escape character from a `# escape=` parser directive, else the backslash.
fn escape_character(lines: &[&str]) -> char {
    for line in lines {
        let Some(comment) = line.trim().strip_prefix('#') else { break };
        let Some((key, value)) = comment.split_once('=') else { break };
        if key.trim().eq_ignore_ascii_case("escape") && value.trim() == "`" {
            return '`';
        }
    }
    '\\'
}

/// The heredoc words an instruction opens: `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`.
fn heredoc_words(arguments: &str) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut rest = arguments;
    while let Some(at) = rest.find("<<") {
        let mut after = &rest[at + 2..];
        let strip_tabs = after.starts_with('-');
        if strip_tabs {
            after = &after[1..];
        }
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        if let Some(quote) = quote {
            after = &after[1..];
            let end = after.find(quote).unwrap_or(after.len());
            if end > 0 {
                words.push((after[..end].to_owned(), strip_tabs));
            }
            rest = &after[end..];
            continue;
        }
        let end =
            after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        // `<<` followed by no word is a shell operator, not a heredoc.
        if end > 0 && after[..end].chars().next().is_some_and(|c| !c.is_ascii_digit()) {
            words.push((after[..end].to_owned(), strip_tabs));
        }
        rest = &after[end..];
    }
    words
}

/// Groups instructions into stages, substituting the `ARG`s declared before the first
/// `FROM` (with `overrides` as build arguments) into each base image.
pub(crate) fn stages(
    instructions: Vec<Instruction>,
    overrides: &[(&str, &str)],
) -> Result<Vec<Stage>, SyntaxError> {
    let mut global: Vec<(String, Option<String>)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction
                .arguments
                .split_whitespace()
                .filter(|word| !word.starts_with("--"))
                .collect();
            let (base_written, name) = match words.as_slice() {
                [base] => (*base, None),
                [base, r#as, name] if r#as.eq_ignore_ascii_case("as") => (*base, Some(*name)),
                _ => {
                    return Err(SyntaxError {
                        line: instruction.line,
                        message: format!(
                            "`FROM {}` is not `FROM [--platform=…] image [AS name]`",
                            instruction.arguments
                        ),
                    });
                }
            };
            let lookup = |variable: &str| {
                if let Some((_, value)) = overrides.iter().find(|(key, _)| *key == variable) {
                    return Some((*value).to_owned());
                }
                global.iter().rev().find(|(key, _)| key == variable).and_then(|(_, v)| v.clone())
            };
            let (base, unresolved) = match substitute(base_written, &lookup) {
                Ok(base) => (Some(base), None),
                Err(variable) => (None, Some(variable)),
            };
            let parent = base.as_deref().and_then(|base| {
                stages.iter().position(|stage| {
                    stage.name.as_deref().is_some_and(|name| name.eq_ignore_ascii_case(base))
                })
            });
            stages.push(Stage {
                base_written: base_written.to_owned(),
                base,
                unresolved,
                name: name.map(str::to_owned),
                parent,
                line: instruction.line,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(instruction),
            None if instruction.keyword == "ARG" => {
                for declaration in instruction.arguments.split_whitespace() {
                    let (key, value) = match declaration.split_once('=') {
                        Some((key, value)) => (key, Some(unquote(value).to_owned())),
                        None => (declaration, None),
                    };
                    global.push((key.to_owned(), value));
                }
            }
            None => {
                return Err(SyntaxError {
                    line: instruction.line,
                    message: format!("`{}` before the first `FROM`", instruction.keyword),
                });
            }
        }
    }
    if stages.is_empty() {
        return Err(SyntaxError { line: 1, message: "no `FROM` instruction".into() });
    }
    Ok(stages)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alt}`; the error names a
/// variable without a value.
fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| after.to_owned())?;
            let expression = &inner[..end];
            let (name, operator, word) = match expression.find(":-").or(expression.find(":+")) {
                Some(split) => {
                    (&expression[..split], &expression[split..split + 2], &expression[split + 2..])
                }
                None => (expression, "", ""),
            };
            let value = lookup(name).filter(|value| !value.is_empty());
            match (operator, value) {
                (":-", None) => out.push_str(word),
                (":+", Some(_)) => out.push_str(word),
                (":+", None) => {}
                (_, Some(value)) => out.push_str(&value),
                (_, None) => return Err(name.to_owned()),
            }
            rest = &inner[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            let name = &after[..end];
            match lookup(name).filter(|value| !value.is_empty()) {
                Some(value) => out.push_str(&value),
                None => return Err(name.to_owned()),
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether an instruction's arguments are in exec form (a JSON array of strings).
pub(crate) fn is_exec_form(arguments: &str) -> bool {
    serde_json::from_str::<Vec<String>>(arguments.trim()).is_ok_and(|words| !words.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Stage> {
        stages(instructions(text).unwrap(), &[]).unwrap()
    }

    #[test]
    fn continuations_join_and_skip_comment_lines() {
        let text = "FROM scratch\nLABEL a=1 \\\n# a comment\n\n      b=2\nUSER 1\n";
        let all = instructions(text).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].arguments, "a=1  b=2");
        assert_eq!((all[1].line, all[2].line), (2, 6));
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let all = instructions("# escape=`\nFROM scratch\nRUN a `\n  b\nUSER 1\n").unwrap();
        assert_eq!(all[1].arguments, "a  b");
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn heredocs_end_at_their_word_and_the_next_instruction_follows() {
        let text = "FROM debian:12.7\nRUN <<EOF bash\nset -euo pipefail\necho ready | tee /tmp/ok\nEOF\nCOPY app /app\n";
        let all = instructions(text).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].heredocs, ["set -euo pipefail\necho ready | tee /tmp/ok\n"]);
        assert_eq!((all[2].keyword.as_str(), all[2].line), ("COPY", 6));
    }

    #[test]
    fn several_and_quoted_and_tab_stripped_heredocs() {
        let text = "FROM x:1\nCOPY <<\"A\" <<-B /dst/\none\nA\n\ttwo\n\tB\nUSER 1\n";
        let all = instructions(text).unwrap();
        assert_eq!(all[1].heredocs, ["one\n", "two\n"]);
        assert_eq!(all[2].line, 7);
        assert!(instructions("FROM x:1\nRUN <<EOF\necho\n").unwrap_err().message.contains("EOF"));
        assert_eq!(instructions("FROM x:1\nRUN a <<2 b\n").unwrap()[1].heredocs.len(), 0);
    }

    #[test]
    fn args_before_from_resolve_and_stage_names_are_not_images() {
        let text = "ARG BASE=rust:1.82-slim\nFROM ${BASE} AS build\nFROM build AS test\nFROM --platform=$BUILDPLATFORM example/runtime:2\n";
        let stages = parse(text);
        assert_eq!(stages[0].base.as_deref(), Some("rust:1.82-slim"));
        assert_eq!(stages[1].parent, Some(0));
        assert_eq!(stages[2].base.as_deref(), Some("example/runtime:2"));
        let unresolved = parse("ARG BASE\nFROM $BASE\n");
        assert_eq!(unresolved[0].unresolved.as_deref(), Some("BASE"));
        let defaulted = parse("FROM ${IMAGE:-debian:12.7}\n");
        assert_eq!(defaulted[0].base.as_deref(), Some("debian:12.7"));
    }

    #[test]
    fn malformed_files_are_errors_at_their_line() {
        assert_eq!(instructions("FROM x\nFORM y\n").unwrap_err().line, 2);
        assert!(stages(instructions("RUN x\n").unwrap(), &[]).is_err());
        assert!(stages(instructions("FROM a b c d\n").unwrap(), &[]).is_err());
        assert!(stages(Vec::new(), &[]).is_err());
    }

    #[test]
    fn exec_form_is_a_json_array() {
        assert!(is_exec_form(r#"["/api", "healthcheck"]"#));
        assert!(!is_exec_form("curl -f http://localhost/ || exit 1"));
        assert!(!is_exec_form("[]"));
    }
}

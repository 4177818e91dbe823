//! A YAML document tree that keeps the line and column of every node.
//!
//! Built from the events of libyaml-safer, a port of libyaml: Compose's own YAML reader
//! (go-yaml) descends from libyaml too, so both accept the same syntax, lenient flow
//! indentation included. Anchors and aliases are resolved by copying, merge keys (`<<`) are
//! applied as Compose applies them (explicit keys win), and duplicate keys are an error.
//! Scalars keep their text and whether they were plain; types are resolved on demand with the
//! YAML 1.2 core schema, as Compose v2 does, so `2122:22` stays a string (YAML 1.1 readers
//! take it for a base-60 number).

use std::collections::HashMap;
use std::fmt;

use libyaml_safer::{Event, EventData, Mark, Parser, ScalarStyle};

/// A position in a source file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    /// Which of several loaded files the node came from (an index the loader keeps).
    pub file: u16,
}

/// One node of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A scalar's text and whether it was written plain (unquoted, not a block).
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub plain: bool,
}

/// One key of a mapping with the position of the key itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A scalar resolved with the core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// A YAML syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.pos.line, self.pos.column, self.message)
    }
}

impl Node {
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }

    /// The entry for `key` in a mapping.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|entry| entry.key == key)
    }

    /// The value for `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|entry| &entry.value)
    }

    /// The scalar resolved with the core schema; quoted scalars are always strings.
    pub fn typed(&self) -> Option<Typed<'_>> {
        let scalar = self.as_scalar()?;
        Some(if scalar.plain { resolve_plain(&scalar.text) } else { Typed::Str(&scalar.text) })
    }

    /// Whether the node is a null scalar (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        matches!(self.typed(), Some(Typed::Null))
    }

    /// The scalar's text whatever its type (`8080` and `"8080"` both give "8080").
    pub fn text(&self) -> Option<&str> {
        self.as_scalar().map(|scalar| scalar.text.as_str())
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar(_) => match self.typed() {
                Some(Typed::Null) => "null",
                Some(Typed::Bool(_)) => "a boolean",
                Some(Typed::Int(_)) => "an integer",
                Some(Typed::Float(_)) => "a number",
                _ => "a string",
            },
        }
    }
}

/// Core-schema resolution of a plain scalar (YAML 1.2.2, 10.3.2).
fn resolve_plain(text: &str) -> Typed<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
        "true" | "True" | "TRUE" => return Typed::Bool(true),
        "false" | "False" | "FALSE" => return Typed::Bool(false),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty()
        && unsigned.bytes().all(|byte| byte.is_ascii_digit())
        && let Ok(number) = text.parse()
    {
        return Typed::Int(number);
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(number) = i64::from_str_radix(hex, 16)
    {
        return Typed::Int(number);
    }
    if let Some(octal) = text.strip_prefix("0o")
        && let Ok(number) = i64::from_str_radix(octal, 8)
    {
        return Typed::Int(number);
    }
    let looks_numeric = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_numeric && let Ok(number) = text.parse() {
        return Typed::Float(number);
    }
    Typed::Str(text)
}

/// Parses one YAML document; an empty input gives an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    parse_file(text, 0)
}

/// Parses one YAML document whose positions carry the loader's index for its file.
pub fn parse_file(text: &str, file: u16) -> Result<Node, SyntaxError> {
    let mut builder = Builder { file, ..Builder::default() };
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    loop {
        let event = parser.parse().map_err(|error| SyntaxError {
            pos: error
                .problem_mark()
                .map_or(Pos { line: 1, column: 1, file }, |mark| pos_of_mark(mark, file)),
            message: match error.context() {
                Some(context) => format!("{} {context}", error.problem()),
                None => error.problem().to_owned(),
            },
        })?;
        if matches!(event.data, EventData::StreamEnd) {
            break;
        }
        builder.on_event(event)?;
    }
    let empty = Pos { line: 1, column: 1, file };
    Ok(builder.root.unwrap_or(Node { kind: Kind::Map(Vec::new()), pos: empty }))
}

/// libyaml counts lines and columns from 0.
fn pos_of_mark(mark: Mark, file: u16) -> Pos {
    Pos { line: mark.line as u32 + 1, column: mark.column as u32 + 1, file }
}

/// A container being filled, with the anchor it will be registered under.
enum Open {
    Seq { node: Node, anchor: Option<String> },
    Map { node: Node, anchor: Option<String>, pending_key: Option<(String, Pos)> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<String, Node>,
    root: Option<Node>,
    documents: usize,
    file: u16,
}

impl Builder {
    fn on_event(&mut self, event: Event) -> Result<(), SyntaxError> {
        let pos = pos_of_mark(event.start_mark, self.file);
        match event.data {
            EventData::DocumentStart { .. } => {
                self.documents += 1;
                if self.documents > 1 {
                    let message = "more than one YAML document: a Compose file holds exactly one";
                    return Err(SyntaxError { pos, message: message.into() });
                }
            }
            EventData::Scalar { value, style, anchor, .. } => {
                let plain = style == ScalarStyle::Plain;
                let node = Node { kind: Kind::Scalar(Scalar { text: value, plain }), pos };
                self.finish(node, anchor)?;
            }
            EventData::SequenceStart { anchor, .. } => {
                self.stack
                    .push(Open::Seq { node: Node { kind: Kind::Seq(Vec::new()), pos }, anchor });
            }
            EventData::MappingStart { anchor, .. } => {
                let node = Node { kind: Kind::Map(Vec::new()), pos };
                self.stack.push(Open::Map { node, anchor, pending_key: None });
            }
            EventData::SequenceEnd | EventData::MappingEnd => {
                let (mut node, anchor) = match self.stack.pop() {
                    Some(Open::Seq { node, anchor }) | Some(Open::Map { node, anchor, .. }) => {
                        (node, anchor)
                    }
                    None => return Ok(()),
                };
                apply_merge_keys(&mut node)?;
                self.finish(node, anchor)?;
            }
            EventData::Alias { anchor } => {
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    let message = format!("alias *{anchor} refers to no anchor defined before it");
                    return Err(SyntaxError { pos, message });
                };
                self.finish(Node { pos, ..node }, None)?;
            }
            EventData::StreamStart { .. }
            | EventData::StreamEnd
            | EventData::DocumentEnd { .. } => {}
        }
        Ok(())
    }

    /// Places a completed node into its parent (or as the root) and registers its anchor.
    fn finish(&mut self, node: Node, anchor: Option<String>) -> Result<(), SyntaxError> {
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { node: parent, .. }) => {
                if let Kind::Seq(items) = &mut parent.kind {
                    items.push(node);
                }
            }
            Some(Open::Map { node: parent, pending_key, .. }) => match pending_key.take() {
                None => {
                    let key = match &node.kind {
                        Kind::Scalar(scalar) => scalar.text.clone(),
                        _ => {
                            let message =
                                "a mapping key must be a plain value, not a list or mapping";
                            return Err(SyntaxError { pos: node.pos, message: message.into() });
                        }
                    };
                    *pending_key = Some((key, node.pos));
                }
                Some((key, key_pos)) => {
                    if let Kind::Map(entries) = &mut parent.kind {
                        if key != "<<"
                            && let Some(first) = entries.iter().find(|entry| entry.key == key)
                        {
                            let message = format!(
                                "duplicate key `{key}` (first defined on line {})",
                                first.key_pos.line
                            );
                            return Err(SyntaxError { pos: key_pos, message });
                        }
                        entries.push(Entry { key, key_pos, value: node });
                    }
                }
            },
        }
        Ok(())
    }
}

/// Replaces `<<` entries of a mapping by the entries they merge in, explicit keys first.
fn apply_merge_keys(node: &mut Node) -> Result<(), SyntaxError> {
    let Kind::Map(entries) = &mut node.kind else { return Ok(()) };
    if !entries.iter().any(|entry| entry.key == "<<") {
        return Ok(());
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) =
        std::mem::take(entries).into_iter().partition(|entry| entry.key == "<<");
    for merge in merges {
        let sources: Vec<&Node> = match &merge.value.kind {
            Kind::Map(_) => vec![&merge.value],
            Kind::Seq(items) => items.iter().collect(),
            Kind::Scalar(_) => {
                let message = "a merge key (<<) takes a mapping or a list of mappings";
                return Err(SyntaxError { pos: merge.key_pos, message: message.into() });
            }
        };
        for source in sources {
            let Some(source_entries) = source.as_map() else {
                let message = "a merge key (<<) takes a mapping or a list of mappings";
                return Err(SyntaxError { pos: source.pos, message: message.into() });
            };
            for entry in source_entries {
                if !own.iter().any(|existing| existing.key == entry.key) {
                    own.push(entry.clone());
                }
            }
        }
    }
    *entries = own;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_and_reads_ports_as_yaml_1_2() {
        let root = parse("services:\n  sftp:\n    ports:\n      - 2122:22\n      - \"8080:80\"\n")
            .unwrap();
        let ports = root.get("services").unwrap().get("sftp").unwrap().get("ports").unwrap();
        let items = ports.as_seq().unwrap();
        assert_eq!(items[0].typed(), Some(Typed::Str("2122:22")));
        assert!(items[0].as_scalar().unwrap().plain);
        assert_eq!(items[0].pos, Pos { line: 4, column: 9, file: 0 });
        assert!(!items[1].as_scalar().unwrap().plain);
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let root = parse("a: 3000\nb: true\nc: ~\nd: 1.5\ne: yes\nf: '3000'\ng:\n").unwrap();
        assert_eq!(root.get("a").unwrap().typed(), Some(Typed::Int(3000)));
        assert_eq!(root.get("b").unwrap().typed(), Some(Typed::Bool(true)));
        assert!(root.get("c").unwrap().is_null());
        assert_eq!(root.get("d").unwrap().typed(), Some(Typed::Float(1.5)));
        assert_eq!(
            root.get("e").unwrap().typed(),
            Some(Typed::Str("yes")),
            "YAML 1.2 has no yes/no booleans"
        );
        assert_eq!(root.get("f").unwrap().typed(), Some(Typed::Str("3000")));
        assert!(root.get("g").unwrap().is_null());
    }

    #[test]
    fn applies_anchors_and_merge_keys_with_explicit_keys_winning() {
        let text =
            "x: &base\n  restart: always\n  image: a\ny:\n  image: b\n  <<: *base\nz: *base\n";
        let root = parse(text).unwrap();
        let y = root.get("y").unwrap();
        assert_eq!(y.get("image").unwrap().text(), Some("b"));
        assert_eq!(y.get("restart").unwrap().text(), Some("always"));
        assert_eq!(root.get("z").unwrap().get("image").unwrap().text(), Some("a"));
    }

    #[test]
    fn merges_a_list_of_mappings() {
        let text = "a: &a {p: 1}\nb: &b {q: 2}\nc:\n  <<: [*a, *b]\n";
        let c = parse(text).unwrap().get("c").unwrap().clone();
        assert_eq!(c.get("p").unwrap().text(), Some("1"));
        assert_eq!(c.get("q").unwrap().text(), Some("2"));
    }

    #[test]
    fn duplicate_keys_are_errors_with_both_lines() {
        let error = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(error.pos.line, 3);
        assert!(error.message.contains("line 1"), "{}", error.message);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let error = parse("services:\n  a: [1, 2\n").unwrap_err();
        assert!(error.pos.line >= 2, "{error}");
    }

    #[test]
    fn accepts_a_flow_sequence_closed_left_of_its_items_as_compose_does() {
        let text = "svc:\n  healthcheck:\n    test: [\n        \"CMD\",\n        \"true\",\n    ]\n    interval: 5s\n";
        let root = parse(text).unwrap();
        let healthcheck = root.get("svc").unwrap().get("healthcheck").unwrap();
        assert_eq!(healthcheck.get("test").unwrap().as_seq().unwrap().len(), 2);
        assert_eq!(healthcheck.get("interval").unwrap().pos.line, 7);
    }

    #[test]
    fn an_empty_file_is_an_empty_mapping() {
        assert_eq!(parse("").unwrap().as_map().map(<[Entry]>::len), Some(0));
    }
}

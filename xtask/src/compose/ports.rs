//! Port mappings, short syntax (`[IP:][HOST:]CONTAINER[/PROTO]`, ranges, bracketed IPv6) and
//! long syntax (`target`, `published`, `host_ip`, `protocol`, `mode`, `name`, `app_protocol`).

use crate::location::{InputError, Location};
use crate::yaml::{Node, Typed};

/// One port mapping of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The host address; `None` binds every address.
    pub host_ip: Option<String>,
    /// The host port range; `None` asks the engine for an ephemeral port.
    pub published: Option<(u16, u16)>,
    /// The container port range.
    pub target: (u16, u16),
    pub protocol: String,
    pub location: Location,
    /// The entry as written (short syntax) or a rendering of it (long syntax).
    pub raw: String,
    /// An unquoted `HOST:CONTAINER` pair that YAML 1.1 readers take for a base-60 number.
    pub sexagesimal_risk: bool,
}

impl Port {
    pub fn contains_target(&self, port: u16) -> bool {
        self.target.0 <= port && port <= self.target.1
    }
}

/// Reads one entry of `ports:`.
pub fn parse_port(node: &Node, location: Location) -> Result<Port, InputError> {
    match node.typed() {
        Some(Typed::Int(number)) => {
            let target = port_number(&number.to_string(), &location)?;
            Ok(Port {
                host_ip: None,
                published: None,
                target: (target, target),
                protocol: "tcp".into(),
                raw: number.to_string(),
                location,
                sexagesimal_risk: false,
            })
        }
        Some(Typed::Str(text)) => {
            let plain = node.as_scalar().is_some_and(|scalar| scalar.plain);
            parse_short(text, plain, location)
        }
        _ if node.as_map().is_some() => parse_long(node, location),
        _ => Err(InputError::new(
            location,
            format!("a port is a number, a string or a mapping, not {}", node.type_name()),
            "write it as \"HOST:CONTAINER\" in quotes, or in long syntax with `target:`",
        )),
    }
}

fn parse_short(text: &str, plain: bool, location: Location) -> Result<Port, InputError> {
    let invalid = |why: &str| {
        InputError::new(
            location.clone(),
            format!("invalid port mapping {text:?}: {why}"),
            "write [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], e.g. \"127.0.0.1:8080:80/tcp\"",
        )
    };
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, protocol)) => (spec, protocol.to_ascii_lowercase()),
        None => (text, "tcp".to_owned()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid("the protocol must be tcp, udp or sctp"));
    }

    // Split off a bracketed IPv6 address first; an unbracketed one keeps its colons.
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after.split_once(']').ok_or_else(|| invalid("unclosed `[`"))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| invalid("expected `:` after `]`"))?;
        (Some(ip.to_owned()), rest.to_owned())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec.to_owned()),
            _ => {
                let ip = parts[..parts.len() - 2].join(":");
                (Some(ip), parts[parts.len() - 2..].join(":"))
            }
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((published, target)) => (Some(published), target),
        None => (None, rest.as_str()),
    };
    let target = port_range(target, &location)
        .map_err(|_| invalid("the container port is not a port number"))?;
    let published = match published {
        None | Some("") => None,
        Some(published) => Some(
            port_range(published, &location)
                .map_err(|_| invalid("the host port is not a port number"))?,
        ),
    };
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    let sexagesimal_risk = plain && is_sexagesimal_pair(text);
    Ok(Port {
        host_ip,
        published,
        target,
        protocol,
        location,
        raw: text.to_owned(),
        sexagesimal_risk,
    })
}

/// `^\d+:[0-5]?\d$`: what YAML 1.1 reads as a base-60 integer.
fn is_sexagesimal_pair(text: &str) -> bool {
    let Some((left, right)) = text.split_once(':') else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(left)
        && digits(right)
        && right.len() <= 2
        && (right.len() == 1 || right.as_bytes()[0] <= b'5')
}

fn parse_long(node: &Node, location: Location) -> Result<Port, InputError> {
    const KEYS: [&str; 7] =
        ["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"];
    for entry in node.as_map().unwrap_or_default() {
        if !KEYS.contains(&entry.key.as_str()) && !entry.key.starts_with("x-") {
            return Err(InputError::new(
                Location { line: entry.key_pos.line, column: entry.key_pos.column, ..location },
                format!("unknown key `{}` in a port mapping", entry.key),
                format!("use one of: {}", KEYS.join(", ")),
            ));
        }
    }
    let target = node.get("target").and_then(Node::text).ok_or_else(|| {
        InputError::new(
            location.clone(),
            "a long-syntax port needs `target`",
            "add `target: <container port>`",
        )
    })?;
    let target = port_range(target, &location)?;
    let published = match node.get("published").and_then(Node::text) {
        None | Some("") => None,
        Some(text) => Some(port_range(text, &location)?),
    };
    let host_ip =
        node.get("host_ip").and_then(Node::text).filter(|ip| !ip.is_empty()).map(str::to_owned);
    let protocol = node.get("protocol").and_then(Node::text).unwrap_or("tcp").to_ascii_lowercase();
    let raw = format!(
        "{}{}{}/{protocol}",
        host_ip.as_deref().map(|ip| format!("{ip}:")).unwrap_or_default(),
        published.map(|(a, _)| format!("{a}:")).unwrap_or_default(),
        target.0
    );
    Ok(Port { host_ip, published, target, protocol, location, raw, sexagesimal_risk: false })
}

fn port_range(text: &str, location: &Location) -> Result<(u16, u16), InputError> {
    match text.split_once('-') {
        Some((low, high)) => {
            let low = port_number(low, location)?;
            let high = port_number(high, location)?;
            if low > high {
                return Err(InputError::new(
                    location.clone(),
                    format!("port range {text} runs backwards"),
                    "write the lower port first",
                ));
            }
            Ok((low, high))
        }
        None => {
            let port = port_number(text, location)?;
            Ok((port, port))
        }
    }
}

fn port_number(text: &str, location: &Location) -> Result<u16, InputError> {
    text.trim().parse::<u16>().ok().filter(|port| *port > 0).ok_or_else(|| {
        InputError::new(
            location.clone(),
            format!("{text:?} is not a port number"),
            "use a number from 1 to 65535",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn port(yaml_text: &str) -> Result<Port, InputError> {
        let root = parse(&format!("p: {yaml_text}\n")).unwrap();
        parse_port(root.get("p").unwrap(), Location::line("compose.yaml", 1))
    }

    #[test]
    fn reads_short_syntax_variants() {
        let p = port("2122:22").unwrap();
        assert_eq!(
            (p.published, p.target, p.sexagesimal_risk),
            (Some((2122, 2122)), (22, 22), true)
        );
        assert!(!port("\"2122:22\"").unwrap().sexagesimal_risk);
        assert!(!port("8080:80").unwrap().sexagesimal_risk, "80 is not a base-60 digit pair");
        let p = port("\"127.0.0.1:5353:5353/udp\"").unwrap();
        assert_eq!((p.host_ip.as_deref(), p.protocol.as_str()), (Some("127.0.0.1"), "udp"));
        let p = port("\"[::]:8200:8200\"").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("::"));
        let p = port("\"127.0.0.1::8080\"").unwrap();
        assert_eq!((p.published, p.target), (None, (8080, 8080)));
        let p = port("3000").unwrap();
        assert_eq!((p.published, p.target), (None, (3000, 3000)));
        let p = port("\"9000-9002:9000-9002\"").unwrap();
        assert_eq!(p.target, (9000, 9002));
    }

    #[test]
    fn reads_long_syntax() {
        let p =
            port("{target: 80, published: \"8080\", host_ip: 127.0.0.1, protocol: udp}").unwrap();
        assert_eq!(
            (p.published, p.target, p.protocol.as_str()),
            (Some((8080, 8080)), (80, 80), "udp")
        );
        assert!(port("{target: 80, publish: 1}").unwrap_err().message.contains("publish"));
        assert!(port("{published: 80}").is_err());
    }

    #[test]
    fn rejects_bad_entries_with_a_fix() {
        let error = port("\"80:http\"").unwrap_err();
        assert!(error.message.contains("not a port number"), "{}", error.message);
        assert!(port("\"80/icmp\"").is_err());
        assert!(port("[1, 2]").is_err());
        assert!(port("\"70000\"").is_err());
    }
}

//! Structured logs: one JSON object per line on stdout, the shape the artifact hygiene gate
//! checks (`timestamp`, `level`, `service`, `message`, then event fields).

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Map, Value};

/// Writes log events for one service.
#[derive(Clone, Debug)]
pub struct Logger {
    service: &'static str,
}

impl Logger {
    pub fn new(service: &'static str) -> Logger {
        Logger { service }
    }

    pub fn info(&self, message: &str, fields: &[(&str, Value)]) {
        self.event("info", message, fields);
    }

    pub fn warn(&self, message: &str, fields: &[(&str, Value)]) {
        self.event("warn", message, fields);
    }

    pub fn error(&self, message: &str, fields: &[(&str, Value)]) {
        self.event("error", message, fields);
    }

    /// Renders one event as a single line; `fields` never overwrite the four fixed keys.
    pub fn render(&self, level: &str, message: &str, fields: &[(&str, Value)]) -> String {
        let mut object = Map::new();
        let timestamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        object.insert("timestamp".into(), Value::String(timestamp));
        object.insert("level".into(), Value::String(level.into()));
        object.insert("service".into(), Value::String(self.service.into()));
        object.insert("message".into(), Value::String(message.into()));
        for (key, value) in fields {
            object.entry(*key).or_insert_with(|| value.clone());
        }
        Value::Object(object).to_string()
    }

    fn event(&self, level: &str, message: &str, fields: &[(&str, Value)]) {
        let line = self.render(level, message, fields);
        // A closed stdout must not take the service down: the event is lost, the work goes on.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_json_object_with_the_fixed_keys_first() {
        let logger = Logger::new("catalog");
        let line = logger.render("info", "listening", &[("port", Value::from(8080))]);
        assert!(!line.contains('\n'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["service"], "catalog");
        assert_eq!(parsed["level"], "info");
        assert_eq!(parsed["message"], "listening");
        assert_eq!(parsed["port"], 8080);
        assert!(parsed["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn fields_cannot_replace_the_service_name() {
        let line = Logger::new("orders").render("info", "x", &[("service", Value::from("evil"))]);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["service"], "orders");
    }
}

//! Variable interpolation of a stack file, by the rules `docker stack deploy` applies (docker/cli's
//! `cli/compose/template` and `cli/compose/interpolation`, read and rewritten here):
//!
//! - in every string **value** of the document (never in keys): `$$` is a literal `$`; `$NAME`
//!   and `${NAME}` (`[_a-zA-Z][_a-zA-Z0-9]*`) take the variable's value, or an empty string
//!   when it is unset (reported, as the CLI warns);
//! - `${NAME:-default}` when unset or empty, `${NAME-default}` when unset; `${NAME:?message}`
//!   and `${NAME?message}` fail with the message when unset (or empty, with `:`);
//! - any other `$` is an invalid template, and the file is refused naming where;
//! - the operators are tried in the CLI's order, `:-`, `-`, `:?`, `?`, each matching anywhere in
//!   the expression, so `${A:?no-value}` takes `value` as a default for a variable named
//!   `A:?no`, exactly as the CLI does; `:+` and nesting are not supported there either;
//! - an unbraced expression runs to the next `}` or the end of the string once an operator
//!   follows the name (`$A-b c` is `A` with default `b c`);
//! - a value whose text changed is converted to the type its key has (`deploy.replicas: ${N}`
//!   becomes a number), for the keys the CLI lists.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

/// A document after interpolation, with the variables it used while they were unset.
#[derive(Debug, PartialEq)]
pub struct Interpolated {
    pub document: Value,
    pub unset: BTreeSet<String>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InterpolationError {
    #[error(
        "invalid interpolation format for {path}: {template:?}; you may need to escape any $ with another $"
    )]
    Invalid { path: String, template: String },
    #[error("{path}: required variable {name} is missing a value: {message}")]
    Required {
        path: String,
        name: String,
        message: String,
    },
    #[error("{path}: {value:?} is not {expected}")]
    Cast {
        path: String,
        value: String,
        expected: &'static str,
    },
}

/// Interpolates every string value of `document` with `variables`.
pub fn interpolate(
    document: &Value,
    variables: &BTreeMap<String, String>,
) -> Result<Interpolated, InterpolationError> {
    let mut unset = BTreeSet::new();
    let document = walk(document, &mut Vec::new(), variables, &mut unset)?;
    Ok(Interpolated { document, unset })
}

fn walk(
    value: &Value,
    path: &mut Vec<String>,
    variables: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<Value, InterpolationError> {
    match value {
        Value::String(text) => {
            let substituted = substitute(text, variables, unset).map_err(|e| e.at(path, text))?;
            if &substituted == text {
                return Ok(value.clone());
            }
            match cast_for(path) {
                Some(cast) => cast.apply(&substituted).ok_or_else(|| InterpolationError::Cast {
                    path: path.join("."),
                    value: substituted,
                    expected: cast.expected(),
                }),
                None => Ok(Value::String(substituted)),
            }
        }
        Value::Mapping(map) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (key, elem) in map {
                path.push(key_text(key));
                let interpolated = walk(elem, path, variables, unset);
                path.pop();
                out.insert(key.clone(), interpolated?);
            }
            Ok(Value::Mapping(out))
        }
        Value::Sequence(list) => {
            path.push("[]".into());
            let out: Result<Vec<Value>, _> = list.iter().map(|e| walk(e, path, variables, unset)).collect();
            path.pop();
            Ok(Value::Sequence(out?))
        }
        other => Ok(other.clone()),
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Why one string could not be substituted, before the path is known.
#[derive(Debug, PartialEq)]
enum SubstituteError {
    Invalid,
    Required { name: String, message: String },
}

impl SubstituteError {
    fn at(self, path: &[String], template: &str) -> InterpolationError {
        let path = path.join(".");
        match self {
            SubstituteError::Invalid => InterpolationError::Invalid {
                path,
                template: template.to_string(),
            },
            SubstituteError::Required { name, message } => {
                InterpolationError::Required { path, name, message }
            }
        }
    }
}

/// One string, substituted.
fn substitute(
    template: &str,
    variables: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (expression, consumed) = match after.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
                continue;
            }
            Some(b'{') => {
                let inner = &after[1..];
                let length = expression_length(inner).ok_or(SubstituteError::Invalid)?;
                if inner.as_bytes().get(length) != Some(&b'}') {
                    return Err(SubstituteError::Invalid);
                }
                (&inner[..length], length + 2)
            }
            _ => {
                let length = expression_length(after).ok_or(SubstituteError::Invalid)?;
                (&after[..length], length)
            }
        };
        out.push_str(&evaluate(expression, variables, unset)?);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the expression at the start of `text`: a name, then optionally `:-`, `-`, `:?`
/// or `?` and anything up to the next `}` (or the end). None when no name starts there.
fn expression_length(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if !(first == b'_' || first.is_ascii_alphabetic()) {
        return None;
    }
    let mut end = 1 + bytes[1..]
        .iter()
        .take_while(|b| **b == b'_' || b.is_ascii_alphanumeric())
        .count();
    let operator = match &bytes[end..] {
        [b':', b'-' | b'?', ..] => 2,
        [b'-' | b'?', ..] => 1,
        _ => 0,
    };
    if operator > 0 {
        end += operator;
        end += bytes[end..].iter().take_while(|b| **b != b'}').count();
    }
    Some(end)
}

/// The value of one expression (what stood between `${` and `}`, or after `$`).
fn evaluate(
    expression: &str,
    variables: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
) -> Result<String, SubstituteError> {
    let lookup = |name: &str| variables.get(name).cloned();
    if let Some((name, default)) = expression.split_once(":-") {
        return Ok(lookup(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string()));
    }
    if let Some((name, default)) = expression.split_once('-') {
        return Ok(lookup(name).unwrap_or_else(|| default.to_string()));
    }
    for (operator, empty_is_missing) in [(":?", true), ("?", false)] {
        if let Some((name, message)) = expression.split_once(operator) {
            return match lookup(name) {
                Some(v) if !(empty_is_missing && v.is_empty()) => Ok(v),
                _ => Err(SubstituteError::Required {
                    name: name.to_string(),
                    message: message.to_string(),
                }),
            };
        }
    }
    Ok(lookup(expression).unwrap_or_else(|| {
        unset.insert(expression.to_string());
        String::new()
    }))
}

/// The type a key's interpolated text becomes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cast {
    Int,
    Float,
    Bool,
}

impl Cast {
    fn apply(self, text: &str) -> Option<Value> {
        match self {
            Cast::Int => text.parse::<i64>().ok().map(Value::from),
            Cast::Float => text.parse::<f64>().ok().map(Value::from),
            Cast::Bool => match text.to_ascii_lowercase().as_str() {
                "y" | "yes" | "true" | "on" => Some(Value::Bool(true)),
                "n" | "no" | "false" | "off" => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Cast::Int => "an integer",
            Cast::Float => "a number",
            Cast::Bool => "a boolean",
        }
    }
}

/// The keys whose interpolated text becomes another type, as the CLI's loader lists them
/// (`*` any key, `[]` any list item).
const CASTS: &[(&str, Cast)] = &[
    ("services.*.configs.[].mode", Cast::Int),
    ("services.*.secrets.[].mode", Cast::Int),
    ("services.*.healthcheck.retries", Cast::Int),
    ("services.*.healthcheck.disable", Cast::Bool),
    ("services.*.deploy.replicas", Cast::Int),
    ("services.*.deploy.update_config.parallelism", Cast::Int),
    ("services.*.deploy.update_config.max_failure_ratio", Cast::Float),
    ("services.*.deploy.rollback_config.parallelism", Cast::Int),
    ("services.*.deploy.rollback_config.max_failure_ratio", Cast::Float),
    ("services.*.deploy.restart_policy.max_attempts", Cast::Int),
    ("services.*.deploy.placement.max_replicas_per_node", Cast::Int),
    ("services.*.ports.[].target", Cast::Int),
    ("services.*.ports.[].published", Cast::Int),
    ("services.*.ulimits.*", Cast::Int),
    ("services.*.ulimits.*.hard", Cast::Int),
    ("services.*.ulimits.*.soft", Cast::Int),
    ("services.*.privileged", Cast::Bool),
    ("services.*.oom_score_adj", Cast::Int),
    ("services.*.read_only", Cast::Bool),
    ("services.*.stdin_open", Cast::Bool),
    ("services.*.tty", Cast::Bool),
    ("services.*.volumes.[].read_only", Cast::Bool),
    ("services.*.volumes.[].volume.nocopy", Cast::Bool),
    ("networks.*.external", Cast::Bool),
    ("networks.*.internal", Cast::Bool),
    ("networks.*.attachable", Cast::Bool),
    ("volumes.*.external", Cast::Bool),
    ("secrets.*.external", Cast::Bool),
    ("configs.*.external", Cast::Bool),
];

fn cast_for(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        let parts: Vec<&str> = pattern.split('.').collect();
        let matches = parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || *p == k);
        matches.then_some(*cast)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sub(template: &str, pairs: &[(&str, &str)]) -> Result<String, SubstituteError> {
        substitute(template, &vars(pairs), &mut BTreeSet::new())
    }

    #[test]
    fn the_grammar_of_docker_stack_deploy() {
        let v = [("TAG", "1.2"), ("EMPTY", ""), ("lower", "x")];
        assert_eq!(sub("app:$TAG", &v).unwrap(), "app:1.2");
        assert_eq!(sub("app:${TAG}-slim", &v).unwrap(), "app:1.2-slim");
        assert_eq!(sub("${lower}", &v).unwrap(), "x");
        assert_eq!(sub("${MISSING:-latest}", &v).unwrap(), "latest");
        assert_eq!(sub("${EMPTY:-latest}", &v).unwrap(), "latest");
        assert_eq!(
            sub("${EMPTY-latest}", &v).unwrap(),
            "",
            "set but empty: no default"
        );
        assert_eq!(sub("${MISSING-latest}", &v).unwrap(), "latest");
        assert_eq!(sub("${TAG:?set it}", &v).unwrap(), "1.2");
        assert_eq!(sub("${EMPTY?set it}", &v).unwrap(), "");
        assert_eq!(
            sub("${EMPTY:?set it}", &v),
            Err(SubstituteError::Required {
                name: "EMPTY".into(),
                message: "set it".into()
            })
        );
        assert!(matches!(
            sub("${MISSING?why}", &v),
            Err(SubstituteError::Required { .. })
        ));
        assert_eq!(sub("cost: $$5 and $${TAG}", &v).unwrap(), "cost: $5 and ${TAG}");
        assert_eq!(sub("${MISSING:-a b c}!", &v).unwrap(), "a b c!");
    }

    #[test]
    fn the_quirks_of_docker_stack_deploy_are_kept() {
        let v = [("A", "set")];
        // `-` is tried before `:?`, anywhere in the expression.
        assert_eq!(sub("${B:?no-value}", &v).unwrap(), "value");
        // Unbraced, an operator runs to the next `}` or the end.
        assert_eq!(sub("$B-x y", &v).unwrap(), "x y");
        assert_eq!(sub("$A:x", &v).unwrap(), "set:x", "`:x` is no operator");
        // Not supported, as in the CLI: refused rather than passed through.
        for invalid in ["${A:+alt}", "$5", "${1}", "${A", "price: $", "${}"] {
            assert_eq!(sub(invalid, &v), Err(SubstituteError::Invalid), "{invalid}");
        }
    }

    #[test]
    fn unset_variables_are_empty_and_reported() {
        let mut unset = BTreeSet::new();
        let out = substitute("a${X}b$Y", &vars(&[]), &mut unset).unwrap();
        assert_eq!(out, "ab");
        assert_eq!(unset.into_iter().collect::<Vec<_>>(), ["X", "Y"]);
    }

    #[test]
    fn values_are_interpolated_keys_are_not_and_known_keys_are_typed() {
        let doc: Value = serde_yaml_ng::from_str(
            r#"
services:
  web:
    image: "whoami:${IMG_TAG:-latest}"
    environment: {"${KEY}": "${KEY}"}
    deploy:
      replicas: ${REPLICAS:-2}
      update_config: {parallelism: "${PAR}", max_failure_ratio: "${RATIO}"}
    ports: [{target: "${PORT}", published: 8080}]
    read_only: "${RO}"
networks:
  front: {external: "${EXT}"}
"#,
        )
        .unwrap();
        let v = vars(&[
            ("KEY", "k"),
            ("PAR", "1"),
            ("RATIO", "0.5"),
            ("PORT", "80"),
            ("RO", "yes"),
            ("EXT", "off"),
        ]);
        let out = interpolate(&doc, &v).unwrap();
        let web = &out.document["services"]["web"];
        assert_eq!(web["image"], Value::from("whoami:latest"));
        assert_eq!(web["environment"]["${KEY}"], Value::from("k"));
        assert_eq!(web["deploy"]["replicas"], Value::from(2));
        assert_eq!(web["deploy"]["update_config"]["parallelism"], Value::from(1));
        assert_eq!(
            web["deploy"]["update_config"]["max_failure_ratio"],
            Value::from(0.5)
        );
        assert_eq!(web["ports"][0]["target"], Value::from(80));
        assert_eq!(web["read_only"], Value::Bool(true));
        assert_eq!(out.document["networks"]["front"]["external"], Value::Bool(false));
        assert!(out.unset.is_empty());
    }

    #[test]
    fn errors_name_where() {
        let doc: Value = serde_yaml_ng::from_str(
            "services: {web: {deploy: {replicas: '${N}'}, image: 'a:${T:?tag please}'}}",
        )
        .unwrap();
        let err = interpolate(&doc, &vars(&[("N", "two"), ("T", "1")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"services.web.deploy.replicas: "two" is not an integer"#
        );
        let err = interpolate(&doc, &vars(&[("N", "2")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "services.web.image: required variable T is missing a value: tag please"
        );
        let doc: Value = serde_yaml_ng::from_str("services: {web: {command: 'echo $1'}}").unwrap();
        let err = interpolate(&doc, &vars(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid interpolation format for services.web.command: "echo $1"; you may need to escape any $ with another $"#
        );
    }
}

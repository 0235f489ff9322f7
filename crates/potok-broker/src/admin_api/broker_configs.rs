//! DescribeConfigs and the two AlterConfigs APIs on a BROKER resource: this broker's id names its
//! own configs, the empty name the cluster-wide dynamic defaults (Kafka's
//! `DynamicBrokerConfig`). Which names may change at run time, and which of those Potok
//! enforces, is [`crate::dynamic_config`]'s table; everything else is read-only, as a static
//! Kafka broker config is.

use std::collections::BTreeMap;

use potok_protocol::ErrorCode;

use super::config_ops::{append_or_subtract, AlterOp, DescribedConfig};
use super::{AdminBackend, ApiError, ConfigSource, ConfigType};
use crate::dynamic_config::{self, DynamicConfigs};
use crate::topic_config::ConfigError;

/// Checks a BROKER resource name and tells which level it names: `Ok(false)` for this broker's
/// id, `Ok(true)` for the empty string (cluster-wide dynamic defaults).
pub(super) fn cluster_default_level(
    backend: &dyn AdminBackend,
    name: &str,
) -> Result<bool, ApiError> {
    if name.is_empty() {
        return Ok(true);
    }
    match name.parse::<i32>() {
        Ok(id) if id == backend.node_id() => Ok(false),
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                backend.node_id()
            ),
        )),
    }
}

/// The documentation of a dynamic config that is not among Potok's own settings.
const INERT_DOC: &str = "A dynamic broker config Kafka accepts; Potok stores and describes it \
but does not enforce it yet (see docs/compatibility.md).";

/// DescribeConfigs of a BROKER resource.
pub(super) fn describe_broker(
    backend: &dyn AdminBackend,
    name: &str,
    keys: Option<&[&str]>,
) -> Result<Vec<DescribedConfig>, ApiError> {
    let wanted = |n: &str| keys.is_none_or(|k| k.contains(&n));
    let dynamic = backend.dynamic_broker_configs();
    if cluster_default_level(backend, name)? {
        // Kafka describes only the dynamic defaults themselves under the empty name.
        return Ok(dynamic
            .cluster_default
            .iter()
            .filter(|(n, _)| wanted(n))
            .map(|(n, v)| {
                inert_entry(
                    n,
                    v,
                    ConfigSource::DynamicDefaultBrokerConfig,
                    &dynamic,
                    false,
                )
            })
            .collect());
    }
    let mut out: Vec<DescribedConfig> = Vec::new();
    for entry in backend.broker_configs() {
        if !wanted(&entry.name) {
            continue;
        }
        let base = entry.value.map(|v| {
            let source = if entry.explicit {
                ConfigSource::StaticBrokerConfig
            } else {
                ConfigSource::DefaultConfig
            };
            (v, source)
        });
        let levels = dynamic_levels(&entry.name, &dynamic)
            .into_iter()
            .chain(base)
            .collect::<Vec<_>>();
        let (value, source) = match levels.first() {
            Some((v, s)) => (Some(v.clone()), *s),
            None => (None, ConfigSource::DefaultConfig),
        };
        let hide = |v: Option<String>| if entry.sensitive { None } else { v };
        out.push(DescribedConfig {
            read_only: dynamic_config::lookup(&entry.name).is_none(),
            synonyms: levels
                .into_iter()
                .map(|(v, s)| (entry.name.clone(), hide(Some(v)), s))
                .collect(),
            name: entry.name,
            value: hide(value),
            source,
            sensitive: entry.sensitive,
            config_type: entry.config_type,
            documentation: Some(entry.documentation),
        });
    }
    // Dynamic configs with a stored value that are not Potok settings (the SASL tuning, ...).
    let mut extra: Vec<&String> = dynamic
        .per_broker
        .keys()
        .chain(dynamic.cluster_default.keys())
        .filter(|n| wanted(n) && !out.iter().any(|c| &c.name == *n))
        .collect();
    extra.sort();
    extra.dedup();
    for n in extra {
        let levels = dynamic_levels(n, &dynamic);
        if let Some((v, s)) = levels.first() {
            out.push(inert_entry(n, v, *s, &dynamic, true));
        }
    }
    Ok(out)
}

/// The dynamic values of `name`, per broker first, then the cluster-wide default.
fn dynamic_levels(name: &str, dynamic: &DynamicConfigs) -> Vec<(String, ConfigSource)> {
    let mut levels = Vec::new();
    if let Some(v) = dynamic.per_broker.get(name) {
        levels.push((v.clone(), ConfigSource::DynamicBrokerConfig));
    }
    if let Some(v) = dynamic.cluster_default.get(name) {
        levels.push((v.clone(), ConfigSource::DynamicDefaultBrokerConfig));
    }
    levels
}

/// A described dynamic config that has no entry in Potok's settings table; `all_levels` lists
/// every dynamic level as a synonym (this broker's view), otherwise only `source`'s.
fn inert_entry(
    name: &str,
    value: &str,
    source: ConfigSource,
    dynamic: &DynamicConfigs,
    all_levels: bool,
) -> DescribedConfig {
    let def = dynamic_config::lookup(name);
    let synonyms = if all_levels {
        dynamic_levels(name, dynamic)
            .into_iter()
            .map(|(v, s)| (name.to_string(), Some(v), s))
            .collect()
    } else {
        vec![(name.to_string(), Some(value.to_string()), source)]
    };
    DescribedConfig {
        name: name.to_string(),
        value: Some(value.to_string()),
        source,
        read_only: false,
        sensitive: false,
        config_type: def.map_or(ConfigType::String, |d| d.config_type),
        documentation: Some(INERT_DOC.to_string()),
        synonyms,
    }
}

/// AlterConfigs (legacy) on a BROKER resource: the given configs become the level's complete
/// dynamic set.
pub(super) fn replace_set<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    cluster_default: bool,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = BTreeMap::new();
    for (name, value) in entries {
        let value = value.ok_or_else(|| {
            ConfigError::request(format!("Null value not supported for : {name}"))
        })?;
        let value = dynamic_config::validate(name, value, cluster_default)?;
        if next.insert(name.to_string(), value).is_some() {
            return Err(ConfigError::request(format!("Duplicate config key {name}")));
        }
    }
    Ok(next)
}

/// IncrementalAlterConfigs on a BROKER resource: SET / DELETE, and APPEND / SUBTRACT on list
/// configs starting from the current effective value, as Kafka's `ConfigAdminManager` does.
pub(super) fn apply_incremental<'a>(
    backend: &dyn AdminBackend,
    current: &BTreeMap<String, String>,
    ops: impl IntoIterator<Item = (&'a str, AlterOp, Option<&'a str>)>,
    cluster_default: bool,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    let mut seen: Vec<&str> = Vec::new();
    for (name, op, value) in ops {
        if seen.contains(&name) {
            return Err(ConfigError::request(format!(
                "Error due to duplicate config keys: {name}"
            )));
        }
        seen.push(name);
        if op == AlterOp::Delete {
            // Deleting is allowed for any dynamic name, also one that was never set; a static
            // name is refused as setting it would be.
            if dynamic_config::lookup(name).is_none() {
                return Err(ConfigError::request(format!(
                    "Cannot update these configs dynamically: Set({name})"
                )));
            }
            next.remove(name);
            continue;
        }
        let value = value.ok_or_else(|| {
            ConfigError::request(format!("Null value not supported for : {name}"))
        })?;
        let value = match op {
            AlterOp::Append | AlterOp::Subtract => {
                let def = dynamic_config::lookup(name).ok_or_else(|| {
                    ConfigError::request(format!(
                        "Cannot update these configs dynamically: Set({name})"
                    ))
                })?;
                if def.config_type != ConfigType::List {
                    return Err(ConfigError::invalid(format!(
                        "Config value append/subtract is not allowed for config key: {name}"
                    )));
                }
                let base = match next.get(name) {
                    Some(v) => v.clone(),
                    None => backend
                        .broker_value(name)
                        .map(|(v, _)| v)
                        .unwrap_or_default(),
                };
                append_or_subtract(&base, op, value)
            }
            _ => value.to_string(),
        };
        next.insert(
            name.to_string(),
            dynamic_config::validate(name, &value, cluster_default)?,
        );
    }
    Ok(next)
}

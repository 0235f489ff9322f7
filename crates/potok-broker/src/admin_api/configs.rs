//! DescribeConfigs, AlterConfigs (legacy: replaces a resource's whole override set) and
//! IncrementalAlterConfigs (SET / DELETE / APPEND / SUBTRACT) for topics and this broker.
//!
//! BROKER resources are handled in `broker_configs.rs` (dynamic broker configs); this file
//! holds what both resource types share and the TOPIC side.

use std::collections::{BTreeMap, HashSet};

use potok_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use potok_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use potok_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use potok_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use potok_protocol::ErrorCode;

use super::broker_configs::{self, cluster_default_level};
use super::config_ops::{self, AlterOp, DescribedConfig};
use super::{AdminBackend, ApiError, ConfigSource, RESOURCE_BROKER, RESOURCE_TOPIC};

/// DescribeConfigs v0-4.
pub fn handle_describe_configs(
    backend: &dyn AdminBackend,
    request: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let keys: Option<Vec<&str>> = resource
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(String::as_str).collect());
            let described = match resource.resource_type {
                RESOURCE_TOPIC => describe_topic(backend, &resource.resource_name, keys.as_deref()),
                RESOURCE_BROKER => broker_configs::describe_broker(
                    backend,
                    &resource.resource_name,
                    keys.as_deref(),
                ),
                other => Err(unsupported_resource(other)),
            };
            let mut result = DescribeConfigsResult {
                error_code: 0,
                error_message: None,
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.clone(),
                configs: Vec::new(),
                ..Default::default()
            };
            match described {
                Ok(configs) => {
                    result.configs = configs
                        .into_iter()
                        .map(|c| {
                            to_wire(
                                c,
                                version,
                                request.include_synonyms,
                                request.include_documentation,
                            )
                        })
                        .collect();
                }
                Err(e) => {
                    result.error_code = e.code.code();
                    result.error_message = Some(e.message);
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse {
        throttle_time_ms: 0,
        results,
        ..Default::default()
    }
}

fn unsupported_resource(resource_type: i8) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("Config resource type {resource_type} is not supported by this broker."),
    )
}

fn describe_topic(
    backend: &dyn AdminBackend,
    name: &str,
    keys: Option<&[&str]>,
) -> Result<Vec<DescribedConfig>, ApiError> {
    // Kafka's `ConfigHelper.describeConfigs` validates the name (`Topic.validate`) before
    // looking the topic up.
    crate::topics::validate_topic_name(name)
        .map_err(|e| ApiError::new(ErrorCode::InvalidTopicException, e))?;
    let topic = backend.topic_by_name(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic {name} does not exist."),
        )
    })?;
    Ok(config_ops::describe_topic(&topic.overrides, backend, keys))
}

/// Shapes one described config for the response version: v0 has `is_default` instead of a
/// source, v1 adds the source and synonyms, v3 adds type and documentation.
fn to_wire(
    config: DescribedConfig,
    version: i16,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult {
        name: config.name,
        value: config.value,
        read_only: config.read_only,
        is_sensitive: config.sensitive,
        ..Default::default()
    };
    if version == 0 {
        out.is_default = config.source == ConfigSource::DefaultConfig;
    } else {
        out.config_source = config.source as i8;
        if include_synonyms {
            out.synonyms = config
                .synonyms
                .into_iter()
                .map(|(name, value, source)| DescribeConfigsSynonym {
                    name,
                    value,
                    source: source as i8,
                    ..Default::default()
                })
                .collect();
        }
    }
    if version >= 3 {
        out.config_type = config.config_type as i8;
        out.documentation = if include_documentation {
            config.documentation
        } else {
            None
        };
    } else {
        out.documentation = None;
    }
    out
}

/// A topic's config overrides, name → value.
type Overrides = BTreeMap<String, String>;

/// What an alter request targets: a topic's overrides or one level of dynamic broker configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Topic,
    /// `cluster_default`: the empty resource name (cluster-wide defaults).
    Broker {
        cluster_default: bool,
    },
}

/// The part both alter APIs share, applied to every resource of a request (identified by
/// `key`): a resource named more than once is refused in all its entries (as Kafka does);
/// `next` computes the new config map of the target (a topic's overrides, or one level of
/// dynamic broker configs) from the current one, which is stored unless `validate_only` or
/// unchanged. `respond` makes each resource's response entry from its error code and message.
fn alter_resources<R, T>(
    backend: &dyn AdminBackend,
    resources: &[R],
    key: impl Fn(&R) -> (i8, &str),
    validate_only: bool,
    next: impl Fn(&R, Target, &Overrides) -> Result<Overrides, ApiError>,
    respond: impl Fn(&R, i16, Option<String>) -> T,
) -> Vec<T> {
    let mut seen = HashSet::new();
    let duplicates: HashSet<(i8, &str)> = resources
        .iter()
        .map(&key)
        .filter(|k| !seen.insert(*k))
        .collect();
    resources
        .iter()
        .map(|resource| {
            let (resource_type, name) = key(resource);
            let outcome = if duplicates.contains(&(resource_type, name)) {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate resource in request.",
                ))
            } else {
                match resource_type {
                    RESOURCE_TOPIC => alter_topic(backend, name, validate_only, |current| {
                        next(resource, Target::Topic, current)
                    }),
                    RESOURCE_BROKER => alter_broker(backend, name, validate_only, |target, c| {
                        next(resource, target, c)
                    }),
                    other => Err(unsupported_resource(other)),
                }
            };
            match outcome {
                Ok(()) => respond(resource, 0, None),
                Err(e) => respond(resource, e.code.code(), Some(e.message)),
            }
        })
        .collect()
}

/// Alters one level of this broker's dynamic configs.
fn alter_broker(
    backend: &dyn AdminBackend,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(Target, &Overrides) -> Result<Overrides, ApiError>,
) -> Result<(), ApiError> {
    let cluster_default = cluster_default_level(backend, name)?;
    let dynamic = backend.dynamic_broker_configs();
    let current = dynamic.level(cluster_default);
    let next = next(Target::Broker { cluster_default }, current)?;
    backend.set_dynamic_broker_configs(cluster_default, next, validate_only)
}

/// Alters existing topic `name` (`UNKNOWN_TOPIC_OR_PARTITION` if there is none).
fn alter_topic(
    backend: &dyn AdminBackend,
    name: &str,
    validate_only: bool,
    next_overrides: impl FnOnce(&Overrides) -> Result<Overrides, ApiError>,
) -> Result<(), ApiError> {
    let topic = backend.topic_by_name(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            format!("Topic {name} does not exist."),
        )
    })?;
    let next = next_overrides(&topic.overrides)?;
    if !validate_only && next != topic.overrides {
        backend.set_topic_overrides(&topic.name, next)?;
    }
    Ok(())
}

/// AlterConfigs v0-2 (legacy): the given configs become the topic's complete override set;
/// anything not named returns to its default.
pub fn handle_alter_configs(
    backend: &dyn AdminBackend,
    request: &AlterConfigsRequest,
    _version: i16,
) -> AlterConfigsResponse {
    let responses = alter_resources(
        backend,
        &request.resources,
        |r| (r.resource_type, r.resource_name.as_str()),
        request.validate_only,
        |resource, target, _current| {
            let entries = resource
                .configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref()));
            Ok(match target {
                Target::Topic => config_ops::validate_overrides(entries)?,
                Target::Broker { cluster_default } => {
                    broker_configs::replace_set(entries, cluster_default)?
                }
            })
        },
        |resource, error_code, error_message| AlterConfigsResourceResponse {
            error_code,
            error_message,
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.clone(),
            ..Default::default()
        },
    );
    AlterConfigsResponse {
        throttle_time_ms: 0,
        responses,
        ..Default::default()
    }
}

/// IncrementalAlterConfigs v0-1.
pub fn handle_incremental_alter_configs(
    backend: &dyn AdminBackend,
    request: &IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = alter_resources(
        backend,
        &request.resources,
        |r| (r.resource_type, r.resource_name.as_str()),
        request.validate_only,
        |resource, target, current| {
            let mut ops = Vec::with_capacity(resource.configs.len());
            for c in &resource.configs {
                let op = AlterOp::from_i8(c.config_operation).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "Unknown config operation {} for {}",
                            c.config_operation, c.name
                        ),
                    )
                })?;
                ops.push((c.name.as_str(), op, c.value.as_deref()));
            }
            Ok(match target {
                Target::Topic => config_ops::apply_incremental(current, ops, backend)?,
                Target::Broker { cluster_default } => {
                    broker_configs::apply_incremental(backend, current, ops, cluster_default)?
                }
            })
        },
        |resource, error_code, error_message| IncrementalResourceResponse {
            error_code,
            error_message,
            resource_type: resource.resource_type,
            resource_name: resource.resource_name.clone(),
            ..Default::default()
        },
    );
    IncrementalAlterConfigsResponse {
        throttle_time_ms: 0,
        responses,
        ..Default::default()
    }
}

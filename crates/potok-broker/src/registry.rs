//! The handler registry: which API keys and versions this broker serves, and the function that
//! serves each. It is the single source of the ApiVersions answer, so an API is advertised if
//! and only if a handler is registered for it.
//!
//! A handler is an async function `(Arc<Broker>, RequestContext, Request) -> Result<Reply>`.
//! It receives the request already decoded at a version inside its registered range; requests
//! for other versions never reach it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use potok_log::ReadSlice;
use potok_protocol::messages::{FetchResponse, RequestHeader};
use potok_protocol::{ApiKey, Request, Response};

use crate::error::Result;
use crate::Broker;

/// What the connection knows about a request besides its body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The decoded request header (api key, version, correlation id, client id).
    pub header: RequestHeader,
    /// The API.
    pub api_key: ApiKey,
    /// The request version.
    pub api_version: i16,
    /// The client's address.
    pub peer: SocketAddr,
}

/// A Fetch response whose record fields are sent from segment files.
///
/// `body`'s `records` fields that are placeholders made by [`crate::sendfile::placeholder`]
/// are replaced, in encoding order, by the bytes of `slices` (written with `sendfile`);
/// other `records` are sent as they are.
#[derive(Debug)]
pub struct FetchReply {
    /// The response body.
    pub body: FetchResponse,
    /// The file ranges, in the order their placeholders appear in `body`.
    pub slices: Vec<ReadSlice>,
}

/// A handler's answer.
#[derive(Debug)]
pub enum Reply {
    /// A response encoded at the request's version.
    Response(Response),
    /// A Fetch response with zero-copy record data.
    Fetch(FetchReply),
    /// No response at all (Produce with acks=0).
    None,
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Reply>> + Send + 'static>>;

/// A request handler.
pub type Handler = Arc<dyn Fn(Arc<Broker>, RequestContext, Request) -> HandlerFuture + Send + Sync>;

/// A registered API: its advertised versions and its handler.
#[derive(Clone)]
pub struct Registration {
    /// Lowest version served.
    pub min_version: i16,
    /// Highest version served.
    pub max_version: i16,
    /// The handler.
    pub handler: Handler,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("min_version", &self.min_version)
            .field("max_version", &self.max_version)
            .finish_non_exhaustive()
    }
}

/// API key → registration. Built once at start-up (see `handlers::register_all`).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    apis: BTreeMap<i16, (ApiKey, Registration)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` for `key` at `min..=max`. The range is clamped to the versions the
    /// codec can decode and that Kafka considers stable, so nothing undecodable is advertised.
    ///
    /// # Panics
    /// When `key` is registered twice or the range is empty after clamping: both are
    /// programming errors found by the first test that starts a broker.
    pub fn register<F, Fut>(&mut self, key: ApiKey, min: i16, max: i16, handler: F)
    where
        F: Fn(Arc<Broker>, RequestContext, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply>> + Send + 'static,
    {
        let (lo, hi) = key
            .stable_versions()
            .unwrap_or_else(|| panic!("{key:?} has no stable versions"));
        let (min, max) = (min.max(lo), max.min(hi));
        assert!(min <= max, "{key:?}: empty version range");
        let handler: Handler = Arc::new(move |b, c, r| Box::pin(handler(b, c, r)));
        let prev = self.apis.insert(
            key as i16,
            (
                key,
                Registration {
                    min_version: min,
                    max_version: max,
                    handler,
                },
            ),
        );
        assert!(prev.is_none(), "{key:?} registered twice");
    }

    /// Replaces `key`'s handler by `wrap(handler)`, keeping its versions (a handler that
    /// decides first whether the request is served here or elsewhere). Nothing happens when
    /// `key` is not registered.
    pub fn wrap(&mut self, key: ApiKey, wrap: impl FnOnce(Handler) -> Handler) {
        if let Some((_, reg)) = self.apis.get_mut(&(key as i16)) {
            reg.handler = wrap(Arc::clone(&reg.handler));
        }
    }

    /// Removes `key` (a build of the registry that serves fewer APIs).
    pub fn unregister(&mut self, key: ApiKey) {
        self.apis.remove(&(key as i16));
    }

    /// The registration for `key`.
    pub fn get(&self, key: ApiKey) -> Option<&Registration> {
        self.apis.get(&(key as i16)).map(|(_, r)| r)
    }

    /// Every registered API with its version range, by key (the ApiVersions list).
    pub fn versions(&self) -> impl Iterator<Item = (ApiKey, i16, i16)> + '_ {
        self.apis
            .values()
            .map(|(k, r)| (*k, r.min_version, r.max_version))
    }
}

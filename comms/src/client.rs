//! What generated clients are built from: their compile-time defaults and a builder.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::Error;
use crate::breaker::BreakerConfig;
use crate::executor::{Executor, ExecutorBuilder};
use crate::retry::RetryConfig;
use crate::signing::{Secret, Signing};

/// The settings a `#[service_client]` attribute fixes at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct ClientDefaults {
    /// The trait's name, used in tracing.
    pub name: &'static str,
    /// The `base_url` key.
    pub base_url: &'static str,
    /// The `base_url_env` key.
    pub base_url_env: Option<&'static str>,
    /// The `service_id` key.
    pub service_id: &'static str,
    /// The `secret_env` key.
    pub secret_env: &'static str,
    /// The `key_id_env` key.
    pub key_id_env: Option<&'static str>,
    /// The `signing` key.
    pub signing: Signing,
}

/// Implemented by generated clients: wraps a built executor.
#[doc(hidden)]
pub trait FromExecutor: Sized {
    /// The attribute's settings.
    const DEFAULTS: &'static ClientDefaults;
    /// Wraps the executor.
    fn from_executor(executor: Executor) -> Self;
}

/// Builds a generated client (`UsersClient::builder()`).
///
/// Anything not set falls back to the `#[service_client]` attribute: the base URL to the
/// `base_url_env` variable when it is set, else to `base_url`; the secret to the `secret_env`
/// variable; the key id to the `key_id_env` variable when it is set, else to the service id. Setters never fail; [`ClientBuilder::build`] reports a missing or bad setting as
/// [`Error::Config`] naming the key or environment variable.
#[must_use]
pub struct ClientBuilder<C> {
    executor: ExecutorBuilder,
    client: PhantomData<fn() -> C>,
}

impl<C: FromExecutor> ClientBuilder<C> {
    #[doc(hidden)]
    pub fn new() -> Self {
        let d = C::DEFAULTS;
        ClientBuilder {
            executor: Executor::builder().name(d.name).signing(d.signing),
            client: PhantomData,
        }
    }

    /// Fills what was not set from the environment and the attribute, and builds the client.
    pub fn build(self) -> Result<C, Error> {
        let d = C::DEFAULTS;
        let mut executor = self.executor;
        if !executor.has_base_url() {
            let from_env = d.base_url_env.and_then(|var| env_var(var).transpose());
            executor = match from_env {
                // Surrounding white space (a value read from a file ends in a newline) is not
                // part of a URL.
                Some(url) => executor.base_url(url?.trim()),
                None => executor.base_url(d.base_url),
            };
        }
        if !executor.has_service_id() {
            executor = executor.service_id(d.service_id);
        }
        if !executor.has_key_id()
            && let Some(key_id) = d.key_id_env.map(env_var).transpose()?.flatten()
        {
            executor = executor.key_id(key_id.trim());
        }
        if !executor.has_secret() {
            executor = executor.secret(secret_var(d.secret_env)?);
        }
        let executor = executor.build().map_err(|e| match e {
            Error::Config { key, message } if key == "base_url" && d.base_url_env.is_some() => {
                Error::Config {
                    key: format!("base_url (or {})", d.base_url_env.unwrap_or_default()),
                    message,
                }
            }
            other => other,
        })?;
        Ok(C::from_executor(executor))
    }
}

/// The settings, for any client: a helper taking a `ClientBuilder<C>` of any generated client
/// (a fleet's shared defaults, say) sets them without naming a bound.
impl<C> ClientBuilder<C> {
    /// The base URL, instead of the attribute's and the environment's.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.executor = self.executor.base_url(url);
        self
    }

    /// The secret, instead of reading the `secret_env` variable.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.executor = self.executor.secret(secret);
        self
    }

    /// This caller's identity, instead of the attribute's `service_id`.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.executor = self.executor.service_id(id);
        self
    }

    /// The key id signatures name, instead of the `key_id_env` variable (by default the
    /// service id; see [`ExecutorBuilder::key_id`]).
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.executor = self.executor.key_id(key_id);
        self
    }

    /// The timeout of each attempt (10 s by default); a method's `timeout_ms` takes precedence.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.executor = self.executor.timeout(timeout);
        self
    }

    /// A deadline for each whole call, retries included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.executor = self.executor.deadline(deadline);
        self
    }

    /// How transient failures are retried.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.executor = self.executor.retry(retry);
        self
    }

    /// How the target's circuit breaker behaves.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.executor = self.executor.breaker(breaker);
        self
    }

    /// Shares the breaker's state with the other replicas of this service.
    pub fn breaker_sync(mut self, sync: crate::BreakerSync) -> Self {
        self.executor = self.executor.breaker_sync(sync);
        self
    }

    /// Uses this client's connection pool instead of the process-wide one.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.executor = self.executor.http_client(client);
        self
    }

    /// A header every call carries unless it sets it itself (see
    /// [`ExecutorBuilder::default_header`]).
    pub fn default_header(mut self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.executor = self.executor.default_header(name, value);
        self
    }

    /// An async function supplying headers for every attempt, signed with it (see
    /// [`ExecutorBuilder::header_hook`](crate::ExecutorBuilder::header_hook)).
    pub fn header_hook<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<http::HeaderMap, Error>> + Send + 'static,
    {
        self.executor = self.executor.header_hook(hook);
        self
    }

    /// The signing scheme, instead of the attribute's.
    pub fn signing(mut self, signing: Signing) -> Self {
        self.executor = self.executor.signing(signing);
        self
    }

    /// The largest response body accepted (16 MiB by default). A larger 2xx body is an
    /// [`Error::Decode`](crate::Error::Decode); an error status with a larger body is that
    /// status's error, without the body.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.executor = self.executor.max_response_bytes(limit);
        self
    }
}

impl<C> fmt::Debug for ClientBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientBuilder")
            .field(&self.executor)
            .finish()
    }
}

/// Reads the secret's environment variable, which must be set and not empty.
///
/// White space around it is kept: it is part of the secret a peer given the same value (a
/// Python service reading the same file) signs with. Since it is more often a file's final
/// line break that a peer's copy lacks, which gets every call a 401, it is logged, by the
/// variable's name, when the client is built.
fn secret_var(name: &str) -> Result<String, Error> {
    let secret = std::env::var(name).map_err(|e| match e {
        std::env::VarError::NotPresent => {
            Error::config(name, "the environment variable is not set")
        }
        std::env::VarError::NotUnicode(_) => {
            Error::config(name, "the environment variable is not valid Unicode")
        }
    })?;
    if secret.is_empty() {
        return Err(Error::config(
            name,
            "the environment variable is set, but empty",
        ));
    }
    if secret.trim() != secret {
        tracing::warn!(
            target: "comms::client",
            variable = name,
            "the secret read from the environment begins or ends with white space (a line \
             break, from a file?); it is used as it is, and a peer whose copy lacks it refuses \
             every call"
        );
    }
    Ok(secret)
}

/// Reads an optional setting's environment variable: `Ok(None)` when unset; an error when
/// set but empty, or only white space (a deployment's template that left its value out: the
/// attribute's default, a production host perhaps, is not what it meant), or not Unicode.
fn env_var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Err(Error::config(
            name,
            "the environment variable is set, but empty: unset it to use the default",
        )),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(
            name,
            "the environment variable is not valid Unicode",
        )),
    }
}

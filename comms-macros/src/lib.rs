//! The `#[service_client]` attribute of the [`comms`](https://docs.rs/comms) crate.
//!
//! Use it through `comms::service_client`: the generated code refers to `::comms` paths (or to
//! the path its `crate = ".."` key gives). Every mistake in a trait is reported, at its token,
//! in one build; set `COMMS_MACROS_DEBUG=1` to print the expansion.

// The macro parses the trait into a model (`ast`, `attr`, `template`), checks what needs more
// than one attribute (`valid`), and generates the client (`expand`) and, with the `server`
// feature, the axum server (`server`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod ast;
mod attr;
mod ctxt;
mod expand;
#[cfg(feature = "server")]
mod server;
mod suggest;
mod template;
mod valid;

use proc_macro::TokenStream;

/// Generates a typed, signed, retrying HTTP client from an annotated trait.
///
/// For a trait `Users`, it generates `UsersClient`: `UsersClient::new()` reads the secret (and
/// any other `*_env` variable) and builds the client with the defaults, and
/// `UsersClient::builder()` returns a `comms::ClientBuilder` to change them.
/// `client.with(options)` is a view whose calls use `comms::CallOptions`. The trait stays as it
/// is and `UsersClient` implements it, so code can take `&impl Users` and tests can mock it.
/// With the `server` feature it also generates `UsersServer`, serving the trait as an axum
/// router (see `comms::server`), unless the trait says `server = false`. Without the feature,
/// a hidden stand-in by that name makes `UsersServer::new(..)` an error that names the feature
/// (a type of your own by that name, beside the trait, takes its place).
///
/// # The attribute's keys
///
/// | key | | meaning |
/// | --- | --- | --- |
/// | `base_url = ".."` | required | `http://` or `https://`, a host, an optional port and path prefix; no query or fragment. Checked at compile time. |
/// | `service_id = ".."` | required | who is calling: the signature's key id unless `key_id_env` says otherwise |
/// | `secret_env = ".."` | required | the variable holding the shared secret, read when the client is built |
/// | `base_url_env = ".."` | optional | a variable that, when set, replaces `base_url` at run time (set but empty, it is an `Error::Config`) |
/// | `key_id_env = ".."` | optional | a variable holding the key id to sign with (key rotation); unset, the key id is `service_id`, and set but empty it is an `Error::Config` |
/// | `signing = ".."` | optional | `"rfc9421"` (the default) or `"legacy"`, for services still on `microservice_comms` |
/// | `server = false` | optional | no `<Trait>Server` for this trait, even with the `server` feature on: for a trait that is only called, whose types need not parse back (Cargo turns the feature on for every crate of a build once one crate asks for it) |
/// | `crate = ".."` | optional | the path the generated code reaches comms by, `::comms` unless given: for a renamed dependency (`crate = "rpc"`) or a crate re-exporting comms (`crate = "platform::rpc"`) |
///
/// # Methods
///
/// Each method is an `async fn(&self, ..) -> Result<T, comms::Error>` with one verb attribute:
/// `#[get]`, `#[post]`, `#[put]`, `#[patch]`, `#[delete]` or `#[head]`, whose first argument is
/// the route. The return type may be written as an alias whose name ends in `Result`
/// (`Result<T>`, `ApiResult<T>`), and the error under any name that stands for `comms::Error`
/// (`Error`, `CommsError`, `errors::Error`); the compiler checks what they stand for, at the
/// type. A method may be written out as what `async fn` means, `fn m(&self) -> impl
/// Future<Output = Result<T, comms::Error>> + Send`. The trait needs no `#[async_trait]`: its
/// futures are `Send` already. Methods of one name may sit under `#[cfg]`s that exclude each other; an argument
/// cannot be under `#[cfg]`. `<name>` in the route is filled by the argument of that name (any
/// `Display`, percent-encoded as one segment), and a last `<name..>` by trailing segments,
/// each encoded.
/// After the route:
///
/// - `idempotent`: a POST or PATCH that may be retried even after it could have reached the
///   server, with one `Idempotency-Key` on every attempt (GET, HEAD, OPTIONS, PUT and DELETE
///   are retried so without it);
/// - `timeout_ms = N`: this method's attempt timeout.
///
/// Arguments other than route parameters say where they go:
///
/// - `#[query]`: one query pair (`Option` left out when `None`; a `Vec`, `VecDeque`,
///   `BTreeSet`, `HashSet`, slice, `Box<[T]>` or array repeated, an array parsed back from
///   exactly its length of values; `#[query(rename = "per-page")]` for another key), and
///   `#[query(flatten)]`: a `Serialize` struct's fields as query pairs (a struct, not an
///   `Option` of one), none named like a plain `#[query]` argument (an `Error::Encode` when one
///   is set) or like another flattened struct's (with `server`, `into_router()` panics on
///   either);
/// - one body: `#[body]` (JSON), `#[body(raw)]` (bytes as `application/octet-stream`, text as
///   `text/plain; charset=utf-8`, sent as they are), `#[form]`
///   (`application/x-www-form-urlencoded`) or `#[multipart]` (`comms::Multipart`);
/// - `#[header("Name")]`: a request header (`Option` left out when `None`), sent as its UTF-8
///   bytes; beside a `#[body]` or `#[body(raw)]`, `#[header("Content-Type")]` is sent in place
///   of the body's own type (a `#[form]` or `#[multipart]` body's type is its own).
///
/// A `<name..>` value may hold `/` but may not be empty: a server's route for it would not
/// match, so an empty one is an `Error::Encode`, unsent. An empty `Vec` field of a flattened
/// query or form struct sends no pair: give it `#[serde(default)]` for the server to read it
/// back.
///
/// `T` is a `Deserialize` type read from a JSON body; `()` to ignore the body;
/// `comms::Response` for the status, headers and bytes; `Option<T>`, where a 404 is
/// `Ok(None)` (a generated server answers `None` with a 404, as it does a `not_found` error);
/// `comms::ResponseValue<T>` for `T` with the response's status and headers; or
/// `comms::ByteStream` or `comms::JsonLines<T>` for a body read as it arrives.
///
/// A method cannot be named `executor` or `with`, the client's own methods. With the `server`
/// feature, every argument must be one the server can parse back and lend: not an
/// `impl Trait`, nor a `dyn Trait` (a `Box<dyn Trait>` is one), nor a `'static` or `&mut`
/// reference, at the top or inside (`Option<&'static str>`).
///
/// Every mistake (an unknown key, a route parameter without an argument, two bodies, a body on
/// a `GET`, a stream on an `idempotent` method, ...) is a compile error at its token, all of
/// them in one build; a type that cannot be what its argument asks (a struct as a plain
/// `#[query]` value) is the compiler's error at that argument, once those are mended. `COMMS_MACROS_DEBUG=1` prints the expansion when the crate is rebuilt.
#[proc_macro_attribute]
pub fn service_client(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service_client(args.into(), input.into()).into()
}

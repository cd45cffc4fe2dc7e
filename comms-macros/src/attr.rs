//! Parsing the attributes: the `#[service_client(..)]` keys, a method's verb attribute and an
//! argument's `#[query]`, `#[body]`, `#[form]`, `#[multipart]` or `#[header("..")]`. Checks that need only one attribute
//! happen here; checks across a whole method are in `valid.rs`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, LitStr, Token};

use crate::ctxt::Ctxt;
use crate::suggest::{closest, did_you_mean, hint};

/// The `#[service_client]` keys.
pub(crate) const KEYS: &[&str] = &[
    "base_url",
    "service_id",
    "secret_env",
    "base_url_env",
    "key_id_env",
    "signing",
    "server",
    "crate",
];

/// The attribute's settings, each checked.
pub(crate) struct Args {
    pub(crate) base_url: Option<LitStr>,
    pub(crate) service_id: Option<LitStr>,
    pub(crate) secret_env: Option<LitStr>,
    pub(crate) base_url_env: Option<LitStr>,
    pub(crate) key_id_env: Option<LitStr>,
    pub(crate) legacy: bool,
    /// Whether the `server` feature generates `<Trait>Server` (`server = false`: never).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) server: bool,
    /// The path the generated code reaches comms by (`crate = "rpc"`), when it is not
    /// `::comms`: a dependency renamed, or comms re-exported by another crate.
    pub(crate) krate: Option<syn::Path>,
}

/// What `crate` takes, said when it is given something else.
const CRATE_VALUE: &str = "`crate` takes a string literal naming the path comms is reached by, \
                           for a renamed dependency or a crate re-exporting it: `crate = \"rpc\"`, \
                           `crate = \"platform::rpc\"`";

/// What `server` takes, said when it is given something else.
const SERVER_VALUE: &str = "`server` takes `true` or `false`: `server = false` generates no \
                            server for a trait that is only called, even with the `server` feature on";

/// An unknown `#[service_client]` key, with the key it is close to, which then counts as given:
/// a misspelt key is reported once, as that, not also as the key missing.
fn unknown_key(name: &str, given: &mut Vec<String>) -> String {
    let meant = closest(name, KEYS.iter().copied());
    given.extend(meant.map(str::to_owned));
    format!(
        "unknown key `{name}`{}; expected one of: {}",
        hint(meant),
        KEYS.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Where a setting that is no `#[service_client]` key is made: on a method's verb attribute,
/// or on the client's builder.
fn elsewhere(name: &str) -> Option<String> {
    let instead = match name {
        "timeout_ms" | "timeout" => {
            "a timeout is set for one method, `#[get(\"/users\", timeout_ms = 500)]`, or for \
             the whole client on its builder, `.timeout(Duration::from_millis(500))`"
        }
        "idempotent" => {
            "`idempotent` marks one method, on its verb attribute: \
             `#[post(\"/users\", idempotent)]`"
        }
        "retries" | "max_retries" | "retry" => {
            "retries are set on the client's builder: \
             `.retry(RetryConfig::default().max_retries(5))`"
        }
        "breaker" => {
            "the circuit breaker is set on the client's builder: \
             `.breaker(BreakerConfig::default().failure_threshold(10))`"
        }
        "deadline" => {
            "a deadline is set on the client's builder, `.deadline(..)`, or for some calls, \
             `client.with(CallOptions::new().deadline(..))`"
        }
        "key_id" => {
            "name the environment variable that holds the key id, \
             `key_id_env = \"USERS_KEY_ID\"`, or give it to the client's builder, `.key_id(..)`"
        }
        _ => return None,
    };
    Some(format!(
        "`{name}` is not a `#[service_client]` key: {instead}"
    ))
}

pub(crate) fn parse_args(cx: &Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args {
        base_url: None,
        service_id: None,
        secret_env: None,
        base_url_env: None,
        key_id_env: None,
        legacy: false,
        server: true,
        krate: None,
    };
    let mut signing: Option<LitStr> = None;
    let mut server: Option<syn::LitBool> = None;
    // Keys that were given, even with a bad value: they are not also reported missing.
    let mut given: Vec<String> = Vec::new();
    let parser = |input: ParseStream| -> syn::Result<()> {
        while !input.is_empty() {
            // A URL written alone, as other clients' attributes take it.
            if input.peek(LitStr) {
                let url: LitStr = input.parse()?;
                cx.error_spanned_by(&url, format!("name the key: `base_url = {}`", url.token()));
                given.push("base_url".to_owned());
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                continue;
            }
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            let mut name = key.to_string();
            // `service-id`: the key as it was meant, reported once.
            let dashed = input.peek(Token![-]);
            while input.peek(Token![-]) {
                input.parse::<Token![-]>()?;
                let more: Ident = input.call(syn::ext::IdentExt::parse_any)?;
                name.push('_');
                name.push_str(&more.to_string());
            }
            // A key alone (`base_url`, or a method's flag such as `idempotent`): said at it,
            // not at the whole attribute.
            if !dashed && (input.is_empty() || input.peek(Token![,])) {
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                given.push(name.clone());
                let message = match (KEYS.contains(&name.as_str()), elsewhere(&name)) {
                    (true, _) if name == "server" => SERVER_VALUE.to_owned(),
                    (true, _) if name == "crate" => CRATE_VALUE.to_owned(),
                    (true, _) => format!("`{name}` needs a value: `{name} = \"..\"`"),
                    (false, Some(instead)) => instead,
                    (false, None) => unknown_key(&name, &mut given),
                };
                cx.error_spanned_by(&key, message);
                continue;
            }
            input.parse::<Token![=]>()?;
            let value: syn::Expr = input.parse()?;
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
            given.push(name.clone());
            if dashed {
                cx.error_spanned_by(&key, format!("keys are written with `_`: `{name}`"));
                continue;
            }
            // A setting of a method or of the built client, written where the service is named.
            if let Some(instead) = elsewhere(&name) {
                cx.error_spanned_by(&key, instead);
                continue;
            }
            if name == "secret" {
                given.push("secret_env".to_owned());
                cx.error_spanned_by(
                    &key,
                    "the secret is never written in the source: name the environment variable \
                     that holds it, `secret_env = \"USERS_SECRET\"`, or give it to the builder, \
                     `.secret(..)`",
                );
                continue;
            }
            if name == "crate" {
                match value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(path),
                        ..
                    }) => match (&args.krate, path.parse::<syn::Path>()) {
                        (Some(_), _) => cx.error_spanned_by(&key, "`crate` set multiple times"),
                        (None, Ok(krate)) => args.krate = Some(krate),
                        (None, Err(_)) => cx.error_spanned_by(&path, CRATE_VALUE),
                    },
                    other => cx.error_spanned_by(&other, CRATE_VALUE),
                }
                continue;
            }
            if name == "server" {
                match value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Bool(value),
                        ..
                    }) => match &server {
                        Some(_) => cx.error_spanned_by(&key, "`server` set multiple times"),
                        None => server = Some(value),
                    },
                    other => cx.error_spanned_by(&other, SERVER_VALUE),
                }
                continue;
            }
            let slot = match name.as_str() {
                "base_url" => &mut args.base_url,
                "service_id" => &mut args.service_id,
                "secret_env" => &mut args.secret_env,
                "base_url_env" => &mut args.base_url_env,
                "key_id_env" => &mut args.key_id_env,
                "signing" => &mut signing,
                _ => {
                    cx.error_spanned_by(&key, unknown_key(&name, &mut given));
                    continue;
                }
            };
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(value),
                ..
            }) = value
            else {
                let instead = match name.as_str() {
                    "base_url" => {
                        ": to choose it when the client is built, name a variable \
                                   with `base_url_env = \"USERS_URL\"` beside it"
                    }
                    "signing" => ": `signing = \"rfc9421\"` or `signing = \"legacy\"`",
                    _ => "",
                };
                cx.error_spanned_by(&value, format!("`{name}` takes a string literal{instead}"));
                continue;
            };
            if slot.is_some() {
                cx.error_spanned_by(&key, format!("`{name}` set multiple times"));
                continue;
            }
            *slot = Some(value);
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(syn::Error::new(
            e.span(),
            format!("{e}; expected `key = \"value\"` pairs separated by commas"),
        ));
        return args;
    }

    // What is missing, said once: with nothing given, the whole attribute to write.
    let missing: Vec<(&str, &str)> = [
        ("base_url", &args.base_url, "\"http://users.internal:8080\""),
        ("service_id", &args.service_id, "\"billing\""),
        ("secret_env", &args.secret_env, "\"USERS_SECRET\""),
    ]
    .into_iter()
    .filter(|(name, slot, _)| slot.is_none() && !given.iter().any(|g| g == name))
    .map(|(name, _, example)| (name, example))
    .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|(n, _)| format!("`{n}`")).collect();
        let pairs: Vec<String> = missing.iter().map(|(n, e)| format!("{n} = {e}")).collect();
        let mut message = format!(
            "missing {}: add `{}` to #[service_client(...)]",
            names.join(", "),
            pairs.join(", ")
        );
        // Given `base_url_env` alone, as if it stood for `base_url`: said where it is.
        let env_alone = args
            .base_url_env
            .as_ref()
            .filter(|_| missing.iter().any(|(name, _)| *name == "base_url"));
        match env_alone {
            Some(env) => {
                message.push_str(
                    "; `base_url_env` overrides `base_url` at run time when its variable is \
                     set, and `base_url` is the URL used when it is not",
                );
                cx.error_spanned_by(env, message);
            }
            None => cx.error_at(Span::call_site(), message),
        }
    }
    if let Some(url) = &args.base_url
        && let Err(why) = comms_uri::BaseUrl::parse(&url.value())
    {
        cx.error_spanned_by(url, format!("invalid `base_url`: {why}"));
    }
    if let Some(id) = &args.service_id {
        let v = id.value();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            cx.error_spanned_by(
                id,
                "invalid `service_id`: it must be non-empty visible ASCII without spaces",
            );
        }
    }
    for env in [&args.secret_env, &args.base_url_env, &args.key_id_env]
        .into_iter()
        .flatten()
    {
        let v = env.value();
        if v.is_empty() || v.contains(['=', '\0']) || v.contains(char::is_whitespace) {
            cx.error_spanned_by(
                env,
                "invalid environment variable name: it must be non-empty, without `=`, NUL or spaces",
            );
        }
    }
    // One variable read as two settings: the secret would be sent as a URL, or a key id.
    let envs = [
        ("secret_env", &args.secret_env),
        ("base_url_env", &args.base_url_env),
        ("key_id_env", &args.key_id_env),
    ];
    for (i, (key, env)) in envs.iter().enumerate() {
        let Some(env) = env else { continue };
        if let Some((earlier, _)) = envs[..i]
            .iter()
            .find(|(_, other)| other.as_ref().is_some_and(|o| o.value() == env.value()))
        {
            cx.error_spanned_by(
                env,
                format!("`{key}` names the same variable as `{earlier}`: each setting has its own"),
            );
        }
    }
    if let Some(server) = server {
        args.server = server.value;
    }
    if let Some(s) = &signing {
        match s.value().as_str() {
            "rfc9421" => {}
            "legacy" => args.legacy = true,
            other => cx.error_spanned_by(
                s,
                format!(
                    "unknown signing scheme `{other}`{}; expected \"rfc9421\" or \"legacy\"",
                    did_you_mean(other, ["rfc9421", "legacy"].into_iter())
                ),
            ),
        }
    }
    args
}

/// The HTTP verbs, as attribute names.
pub(crate) const VERBS: &[&str] = &["get", "post", "put", "patch", "delete", "head"];

/// Method attributes written as other frameworks write them, and what to write instead: verbs
/// comms does not call, and the verb's options written as attributes of their own.
const METHOD_MISTAKES: &[(&str, &str)] = &[
    ("options", OTHER_VERB),
    ("trace", OTHER_VERB),
    ("connect", OTHER_VERB),
    (
        "route",
        "write the verb as the attribute: `#[get(\"/path\")]`",
    ),
    (
        "idempotent",
        "it is an option of the verb: `#[post(\"/path\", idempotent)]`",
    ),
    (
        "timeout_ms",
        "it is an option of the verb: `#[get(\"/path\", timeout_ms = 500)]`",
    ),
    (
        "header",
        "it goes on an argument, `#[header(\"X-Api-Version\")] version: &str`; a header every \
         call sends is the builder's `.default_header(name, value)`",
    ),
    ("query", "it goes on an argument: `#[query] page: u32`"),
    ("body", "it goes on an argument: `#[body] user: &User`"),
    ("form", "it goes on an argument: `#[form] login: &Login`"),
    (
        "multipart",
        "it goes on an argument: `#[multipart] upload: Multipart`",
    ),
    ("path", "the route is the verb's: `#[get(\"/users/<id>\")]`"),
];

/// What an HTTP verb comms does not call is told.
const OTHER_VERB: &str = "comms calls with `get`, `post`, `put`, `patch`, `delete` or `head`";

/// Reports each of `attrs` that is a method attribute of another framework's (see
/// `METHOD_MISTAKES`); whether any was.
pub(crate) fn report_method_mistakes(cx: &Ctxt, attrs: &[Attribute]) -> bool {
    let mut any = false;
    for attr in attrs {
        if let Some((name, instead)) = method_mistake(attr) {
            cx.error_spanned_by(
                attr.path(),
                format!("`#[{name}]` is not an attribute of a method: {instead}"),
            );
            any = true;
        }
    }
    any
}

/// The entry of `METHOD_MISTAKES` that `attr` is, if any.
pub(crate) fn method_mistake(attr: &Attribute) -> Option<(&'static str, &'static str)> {
    let ident = attr.path().get_ident()?;
    METHOD_MISTAKES
        .iter()
        .copied()
        .find(|(name, _)| ident == name)
}

/// A method's verb attribute: `#[get("/route", idempotent, timeout_ms = 500)]`.
pub(crate) struct VerbAttr {
    pub(crate) verb: Ident,
    pub(crate) route: LitStr,
    /// The `idempotent` option, when given.
    pub(crate) idempotent: Option<Ident>,
    pub(crate) timeout_ms: Option<u64>,
}

/// Whether the attribute is a single identifier among `names`.
fn named_one_of(attr: &Attribute, names: &[&str]) -> bool {
    attr.path()
        .get_ident()
        .is_some_and(|i| names.contains(&i.to_string().as_str()))
}

/// Whether `attr` is `#[async_trait]`, which a service trait does not need (and which is
/// reported, then left out of what is emitted).
pub(crate) fn is_async_trait(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "async_trait")
}

/// `#[service_client(..)]` or `#[comms::service_client(..)]`.
pub(crate) fn is_service_client(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "service_client")
}

pub(crate) fn is_verb(attr: &Attribute) -> bool {
    named_one_of(attr, VERBS)
}

pub(crate) fn parse_verb(cx: &Ctxt, attr: &Attribute) -> Option<VerbAttr> {
    let verb = attr.path().get_ident()?.clone();
    let list = match attr.meta.require_list() {
        Ok(list) => list,
        Err(_) => {
            cx.error_spanned_by(attr, format!("expected a route: `#[{verb}(\"/path\")]`"));
            return None;
        }
    };
    if !matches!(list.delimiter, syn::MacroDelimiter::Paren(_)) {
        cx.error_spanned_by(
            attr,
            format!("the route goes in parentheses: `#[{verb}(\"/path\")]`"),
        );
        return None;
    }
    let mut idempotent: Option<Ident> = None;
    let mut timeout_ms: Option<u64> = None;
    let parser = |input: ParseStream| -> syn::Result<LitStr> {
        // A route named rather than written (a shared `const`, `concat!`): the attribute checks
        // the route against the arguments before either has a value.
        if !input.peek(LitStr) {
            let why = match input.fork().parse::<syn::Expr>() {
                Ok(syn::Expr::Path(p)) => Some((
                    quote::ToTokens::into_token_stream(p),
                    "before a constant has a value".to_owned(),
                )),
                Ok(syn::Expr::Macro(m)) => {
                    let name = m.mac.path.segments.last().map(|s| s.ident.to_string());
                    Some((
                        quote::ToTokens::into_token_stream(m),
                        format!("before `{}!` is expanded", name.unwrap_or_default()),
                    ))
                }
                _ => None,
            };
            if let Some((expr, why)) = why {
                return Err(syn::Error::new_spanned(
                    expr,
                    format!(
                        "the route must be written out as a string, `#[{verb}(\"/path\")]`: \
                         `#[service_client]` checks it against the method's arguments {why}"
                    ),
                ));
            }
        }
        let route: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the route as a string: `#[{verb}(\"/path\")]`"),
            )
        })?;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let option: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            match option.to_string().as_str() {
                "idempotent" => {
                    if input.peek(Token![=]) {
                        let eq = input.parse::<Token![=]>()?;
                        let value: Option<syn::Expr> =
                            match input.is_empty() || input.peek(Token![,]) {
                                true => None,
                                false => Some(input.parse()?),
                            };
                        let message = "`idempotent` takes no value: write it alone, \
                                       `#[post(\"/orders\", idempotent)]`";
                        match &value {
                            Some(value) => cx.error_spanned_by(value, message),
                            None => cx.error_spanned_by(eq, message),
                        }
                        continue;
                    }
                    if idempotent.is_some() {
                        cx.error_spanned_by(&option, "`idempotent` set multiple times");
                    }
                    idempotent = Some(option);
                }
                "timeout_ms" => {
                    const NEEDS: &str =
                        "`timeout_ms` is a whole number of milliseconds: `timeout_ms = 500`";
                    if !input.peek(Token![=]) {
                        return Err(syn::Error::new(option.span(), NEEDS));
                    }
                    input.parse::<Token![=]>()?;
                    let value: syn::Expr = input
                        .parse()
                        .map_err(|e| syn::Error::new(e.span(), NEEDS))?;
                    let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(value),
                        ..
                    }) = value
                    else {
                        cx.error_spanned_by(&value, NEEDS);
                        continue;
                    };
                    // A suffix is a unit to a reader (`5s`), but a number's type to the parser,
                    // which would read `5s` as 5: only an integer type's is taken, with the
                    // largest number of its type.
                    const INTEGERS: &[(&str, u64)] = &[
                        ("", u64::MAX),
                        ("u8", u8::MAX as u64),
                        ("u16", u16::MAX as u64),
                        ("u32", u32::MAX as u64),
                        ("u64", u64::MAX),
                        ("u128", u64::MAX),
                        ("usize", u64::MAX),
                        ("i8", i8::MAX as u64),
                        ("i16", i16::MAX as u64),
                        ("i32", i32::MAX as u64),
                        ("i64", i64::MAX as u64),
                        ("i128", u64::MAX),
                        ("isize", i64::MAX as u64),
                    ];
                    let Some(&(_, max)) = INTEGERS
                        .iter()
                        .find(|(suffix, _)| *suffix == value.suffix())
                    else {
                        cx.error_spanned_by(
                            &value,
                            "`timeout_ms` is a number of milliseconds, written without a unit: \
                             `timeout_ms = 5000`",
                        );
                        continue;
                    };
                    match value.base10_parse::<u64>() {
                        Ok(0) => cx.error_spanned_by(&value, "`timeout_ms` must be above zero"),
                        Ok(ms) if ms > max => cx.error_spanned_by(
                            &value,
                            format!("`{value}` does not fit its type: write `timeout_ms = {ms}`"),
                        ),
                        Ok(ms) => {
                            if timeout_ms.is_some() {
                                cx.error_spanned_by(&option, "`timeout_ms` set multiple times");
                            }
                            timeout_ms = Some(ms);
                        }
                        // Digits, but more than 64 bits hold.
                        Err(_) => cx.error_spanned_by(
                            &value,
                            "`timeout_ms` is too large: it is at most `u64::MAX` milliseconds",
                        ),
                    }
                }
                other => {
                    // Rocket's way to name the body's argument.
                    let hint = if other == "data" {
                        "; the body is marked on its argument: `#[body] user: &User` (or \
                         `#[form]`, `#[multipart]`)"
                    } else {
                        ""
                    };
                    cx.error_spanned_by(
                        &option,
                        format!(
                            "unknown option `{other}`{}; expected `idempotent` or `timeout_ms = <milliseconds>`{hint}",
                            did_you_mean(other, ["idempotent", "timeout_ms"].into_iter())
                        ),
                    );
                    // Skip a possible `= value`, whatever it is.
                    if input.peek(Token![=]) {
                        input.parse::<Token![=]>()?;
                        input.parse::<syn::Expr>()?;
                    }
                }
            }
        }
        Ok(route)
    };
    // Parsed as the attribute's arguments, so that one ending early (`#[get()]`) is reported at
    // its closing parenthesis, not at `#[service_client]`.
    match attr.parse_args_with(parser) {
        Ok(route) => {
            if let Some(option) = &idempotent
                && !matches!(verb.to_string().as_str(), "post" | "patch")
            {
                cx.error_spanned_by(
                    option,
                    format!(
                        "`{verb}` is idempotent already; `idempotent` is for `post` and `patch`"
                    ),
                );
            }
            Some(VerbAttr {
                verb,
                route,
                idempotent,
                timeout_ms,
            })
        }
        Err(e) => {
            cx.syn_error(e);
            None
        }
    }
}

/// What an argument attribute makes of the argument.
pub(crate) enum ArgAttr {
    /// `#[query]`; `flatten` holds the `flatten` option's token.
    Query {
        rename: Option<LitStr>,
        flatten: Option<Ident>,
    },
    Body,
    /// `#[body(raw)]`.
    RawBody,
    Form,
    Multipart,
    Header {
        name: LitStr,
    },
}

/// The argument attribute names.
pub(crate) const ARG_ATTRS: &[&str] = &["query", "body", "form", "multipart", "header"];

pub(crate) fn is_arg_attr(attr: &Attribute) -> bool {
    named_one_of(attr, ARG_ATTRS)
}

/// What Rust lets an argument carry: `cfg`, and the lint levels.
const ARG_BUILTIN: &[&str] = &[
    "allow", "cfg", "cfg_attr", "deny", "expect", "forbid", "warn",
];

/// Whether an argument's attribute is none Rust allows there and none of ours: another
/// framework's (`#[json]`, `#[path]`), reported by the macro as an unknown one of its own, and
/// dropped from what it emits, so that the compiler does not report it again.
pub(crate) fn is_foreign_arg_attr(attr: &Attribute) -> bool {
    !is_arg_attr(attr)
        && !attr
            .path()
            .get_ident()
            .is_some_and(|i| ARG_BUILTIN.contains(&i.to_string().as_str()))
}

/// Attributes Rust itself gives meaning to, which are never taken for a misspelt one of ours.
const BUILTIN: &[&str] = &[
    "allow",
    "cfg",
    "cfg_attr",
    "deny",
    "deprecated",
    "diagnostic",
    "doc",
    "expect",
    "forbid",
    "must_use",
    "warn",
];

/// The attribute among `names` that `attr`, a single name that is none of them, is close to:
/// `#[gett(..)]` for `get`, `#[qurey]` for `query`.
pub(crate) fn misspelt(attr: &Attribute, names: &'static [&'static str]) -> Option<&'static str> {
    // `#[comms::get(..)]`: one of ours, written as if it were imported.
    if let Some(name) = qualified(attr) {
        return names.iter().copied().find(|n| name == n);
    }
    let name = attr.path().get_ident()?.to_string();
    if names.contains(&name.as_str()) || BUILTIN.contains(&name.as_str()) {
        return None;
    }
    closest(&name.to_lowercase(), names.iter().copied())
}

/// The last name of an attribute written `comms::name`.
fn qualified(attr: &Attribute) -> Option<&Ident> {
    let segments = &attr.path().segments;
    (segments.len() == 2 && segments[0].ident == "comms").then(|| &segments[1].ident)
}

/// Reports each of `attrs` that is a misspelling of one of `names` as that; whether any was.
pub(crate) fn report_misspellings(
    cx: &Ctxt,
    attrs: &[Attribute],
    names: &'static [&'static str],
) -> bool {
    let mut any = false;
    for attr in attrs {
        // Another framework's attribute is told what to write instead, not a near name.
        if names == VERBS && method_mistake(attr).is_some() {
            continue;
        }
        if let Some(meant) = misspelt(attr, names) {
            let message = match qualified(attr) {
                Some(_) => {
                    let args = if VERBS.contains(&meant) { "(..)" } else { "" };
                    format!(
                        "`#[comms::{meant}]` is written `#[{meant}{args}]`: `#[service_client]` \
                         reads its own attributes by their bare names, which are not imported"
                    )
                }
                None => {
                    let name = attr
                        .path()
                        .get_ident()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    format!("unknown attribute `{name}`{}", hint(Some(meant)))
                }
            };
            cx.error_spanned_by(attr.path(), message);
            any = true;
        }
    }
    any
}

pub(crate) fn parse_arg_attr(cx: &Ctxt, attr: &Attribute) -> Option<ArgAttr> {
    let name = attr.path().get_ident()?.to_string();
    if let syn::Meta::List(list) = &attr.meta
        && !matches!(list.delimiter, syn::MacroDelimiter::Paren(_))
    {
        cx.error_spanned_by(
            attr,
            format!("the arguments of `#[{name}]` go in parentheses: `#[{name}(..)]`"),
        );
        return None;
    }
    match name.as_str() {
        "body" if !matches!(attr.meta, syn::Meta::Path(_)) => {
            let raw = match &attr.meta {
                syn::Meta::List(list) => syn::parse2::<Ident>(list.tokens.clone()).ok(),
                _ => None,
            };
            match raw {
                Some(option) if option == "raw" => Some(ArgAttr::RawBody),
                _ => {
                    cx.error_spanned_by(
                        attr,
                        "`#[body]` takes one option, `raw`: `#[body]` sends JSON, and \
                         `#[body(raw)]` the bytes or text as they are",
                    );
                    None
                }
            }
        }
        "body" | "form" | "multipart" => match &attr.meta {
            syn::Meta::Path(_) if name == "body" => Some(ArgAttr::Body),
            syn::Meta::Path(_) if name == "form" => Some(ArgAttr::Form),
            syn::Meta::Path(_) => Some(ArgAttr::Multipart),
            _ => {
                cx.error_spanned_by(attr, format!("`#[{name}]` takes no arguments"));
                None
            }
        },
        "query" => match &attr.meta {
            syn::Meta::Path(_) => Some(ArgAttr::Query {
                rename: None,
                flatten: None,
            }),
            syn::Meta::List(_) => parse_query_options(cx, attr),
            syn::Meta::NameValue(_) => {
                cx.error_spanned_by(
                    attr,
                    "expected `#[query]`, `#[query(rename = \"name\")]` or `#[query(flatten)]`",
                );
                None
            }
        },
        _ => {
            let parsed = match &attr.meta {
                syn::Meta::List(list) => syn::parse2::<LitStr>(list.tokens.clone()).ok(),
                _ => None,
            };
            let Some(header) = parsed else {
                cx.error_spanned_by(
                    attr,
                    "expected a header name: `#[header(\"X-Request-Id\")]`",
                );
                return None;
            };
            let value = header.value();
            if value.is_empty() {
                cx.error_spanned_by(&header, "a header needs its name: `#[header(\"X-Name\")]`");
                return None;
            }
            if !value.bytes().all(is_token_byte) {
                cx.error_spanned_by(
                    &header,
                    format!("`{}` is not a valid header name", value.escape_default()),
                );
                return None;
            }
            if comms_uri::is_reserved_header(&value) {
                cx.error_spanned_by(
                    &header,
                    format!("`{value}` is set by comms itself (signing or framing) and cannot be an argument"),
                );
                return None;
            }
            if comms_uri::is_context_header(&value) {
                cx.error_spanned_by(
                    &header,
                    format!("`{value}` is written by comms on every attempt, from the call's deadline or trace context, and cannot be an argument: give the call a deadline with `CallOptions::deadline`"),
                );
                return None;
            }
            if comms_uri::is_hop_by_hop_header(&value) {
                cx.error_spanned_by(
                    &header,
                    format!("`{value}` is a hop-by-hop header, which an intermediary removes: a signature covering it would fail on the way, so it cannot be an argument"),
                );
                return None;
            }
            Some(ArgAttr::Header { name: header })
        }
    }
}

/// `#[query(..)]`: `rename = "name"` or `flatten`, not both.
fn parse_query_options(cx: &Ctxt, attr: &Attribute) -> Option<ArgAttr> {
    // `#[query("per-page")]`, as `#[header("Name")]` is written.
    if let syn::Meta::List(list) = &attr.meta
        && let Ok(name) = syn::parse2::<LitStr>(list.tokens.clone())
    {
        cx.error_spanned_by(
            &name,
            format!(
                "`#[query]` takes another key as `rename`: `#[query(rename = {:?})]`",
                name.value()
            ),
        );
        return None;
    }
    let mut rename: Option<(Ident, LitStr)> = None;
    let mut flatten: Option<Ident> = None;
    let result = attr.parse_nested_meta(|meta| {
        let Some(option) = meta.path.get_ident().cloned() else {
            return Err(meta.error(QUERY_OPTIONS));
        };
        if option == "rename" {
            let value: LitStr = meta.value()?.parse()?;
            if value.value().is_empty() {
                return Err(syn::Error::new(
                    value.span(),
                    "a query name cannot be empty",
                ));
            }
            if rename.is_some() {
                return Err(syn::Error::new(
                    option.span(),
                    "`rename` set multiple times",
                ));
            }
            rename = Some((option, value));
            Ok(())
        } else if option == "flatten" {
            if meta.input.peek(Token![=]) {
                return Err(syn::Error::new(
                    option.span(),
                    "`flatten` takes no value: write `#[query(flatten)]`",
                ));
            }
            if flatten.is_some() {
                return Err(syn::Error::new(
                    option.span(),
                    "`flatten` set multiple times",
                ));
            }
            flatten = Some(option);
            Ok(())
        } else {
            let other = option.to_string();
            Err(meta.error(format!(
                "unknown `#[query]` option `{other}`{}; expected `rename = \"name\"` or `flatten`",
                did_you_mean(&other, ["rename", "flatten"].into_iter())
            )))
        }
    });
    if let Err(e) = result {
        cx.syn_error(e);
        return None;
    }
    if let (Some((key, _)), Some(_)) = (&rename, &flatten) {
        cx.error_spanned_by(
            key,
            "`rename` cannot be combined with `flatten`: a flattened value's keys are its field \
             names; rename a field with `#[serde(rename = \"name\")]` on it instead",
        );
        return None;
    }
    Some(ArgAttr::Query {
        rename: rename.map(|(_, value)| value),
        flatten,
    })
}

const QUERY_OPTIONS: &str = "unknown `#[query]` option; expected `rename = \"name\"` or `flatten`";

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

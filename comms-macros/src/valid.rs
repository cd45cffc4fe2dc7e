//! Checks that look at a whole method: route parameters against arguments, bodies (`#[body]`,
//! `#[form]`, `#[multipart]`) against verbs and each other.

use crate::ast::{
    self, ArgKind, Method, OutputKind, Service, Shape, generic_arg, is_primitive, outer_ident,
    subspan, ungrouped, unraw,
};
use crate::ctxt::Ctxt;
use crate::suggest::did_you_mean;
use crate::template::Segment;

pub(crate) fn check(cx: &Ctxt, service: &Service<'_>) {
    for (i, method) in service.methods.iter().enumerate() {
        // Under `#[cfg]`s that differ, two methods of a name may never be compiled together:
        // `twice_under_cfgs` refuses them where they are.
        if earlier_of_its_name(&service.methods, i).any(|m| m.cfgs() == method.cfgs()) {
            cx.error_spanned_by(method.ident(), declared_twice(method));
        }
        check_method(cx, method);
    }
}

/// The methods declared before `methods[i]` under its name.
fn earlier_of_its_name<'m, 'a>(
    methods: &'m [Method<'a>],
    i: usize,
) -> impl Iterator<Item = &'m Method<'a>> {
    let name = methods[i].ident();
    methods[..i].iter().filter(move |m| m.ident() == name)
}

fn declared_twice(method: &Method<'_>) -> String {
    format!(
        "`{}` is declared twice: a client has one method of a name",
        method.ident()
    )
}

/// For each method, the `#[cfg]`s that leave it out where an earlier method of its name (under
/// other `#[cfg]`s) is compiled: with [`twice_under_cfgs`]' refusal, the one error said where
/// both would be.
pub(crate) fn unless_declared_before(service: &Service<'_>) -> Vec<Vec<syn::Attribute>> {
    (0..service.methods.len())
        .map(|i| {
            earlier_of_its_name(&service.methods, i)
                .map(|first| {
                    let preds = first.cfg_predicates();
                    syn::parse_quote!(#[cfg(not(all(#(#preds),*)))])
                })
                .collect()
        })
        .collect()
}

/// Compile errors for methods of one name under `#[cfg]`s that differ, each only where both
/// are compiled.
pub(crate) fn twice_under_cfgs(service: &Service<'_>) -> proc_macro2::TokenStream {
    let mut refusals = proc_macro2::TokenStream::new();
    for (i, method) in service.methods.iter().enumerate() {
        for first in earlier_of_its_name(&service.methods, i) {
            if first.cfgs() != method.cfgs() {
                let both = first.cfg_predicates().chain(method.cfg_predicates());
                let error = syn::Error::new_spanned(method.ident(), declared_twice(method))
                    .to_compile_error();
                refusals.extend(quote::quote!(#[cfg(all(#(#both),*))] const _: () = { #error };));
            }
        }
    }
    refusals
}

fn check_method(cx: &Ctxt, method: &Method<'_>) {
    let verb = method.verb.to_string();
    let name = method.ident();

    // Every argument that is the request's body, with its attribute and the attribute's name.
    let bodies: Vec<_> = method
        .args
        .iter()
        .filter_map(|a| match a.kind {
            ArgKind::Body { attr } => Some((a.ident, attr, "body")),
            ArgKind::RawBody { attr } => Some((a.ident, attr, "body(raw)")),
            ArgKind::Form { attr } => Some((a.ident, attr, "form")),
            ArgKind::Multipart { attr } => Some((a.ident, attr, "multipart")),
            _ => None,
        })
        .collect();
    if let Some(&(first, attr, first_kind)) = bodies.first() {
        if verb == "get" || verb == "head" {
            let instead = match first_kind {
                "form" => " (its fields can go in the query as `#[query(flatten)]`)",
                _ => "",
            };
            cx.error_spanned_by(
                attr,
                format!(
                    "a {} request has no body: drop `#[{first_kind}]` from `{first}`{instead}, or use `#[post]`, `#[put]` or `#[patch]`",
                    verb.to_uppercase(),
                ),
            );
        }
        for &(arg, attr, kind) in &bodies[1..] {
            let message = if first_kind == "body" && kind == "body" {
                format!("`{name}` already sends `{first}` as its body; a request has one `#[body]`")
            } else {
                format!(
                    "`{name}` already sends `{first}` as its body (`#[{first_kind}]`), and a \
                     request has one body: `{arg}` cannot also be `#[{kind}]`"
                )
            };
            cx.error_spanned_by(attr, message);
        }
    }
    if verb == "head"
        && matches!(
            method.output.kind,
            OutputKind::Json | OutputKind::Optional | OutputKind::Value
        )
    {
        cx.error_spanned_by(
            method.output.ty,
            "a HEAD response has no body to decode: return `Result<(), comms::Error>`, `Result<comms::ResponseValue<()>, comms::Error>` (its status and headers) or `Result<comms::Response, comms::Error>`",
        );
    }
    // Bytes decoded from JSON are an array of numbers: a service answering with the bytes
    // themselves (an image, a file) would fail every call at run time.
    let decoded = match method.output.kind {
        OutputKind::Json => Some(method.output.ok),
        OutputKind::Optional | OutputKind::Value => crate::ast::generic_arg(method.output.ok),
        _ => None,
    };
    if let Some(bytes) = decoded.filter(|ty| is_bytes(ty)) {
        cx.error_spanned_by(
            bytes,
            format!(
                "`{name}` decodes its answer from JSON, where these bytes would be an array of \
                 numbers, not the body's bytes: return `comms::Response` for the body as it is \
                 (its `bytes()`, with the status and headers), or `comms::ByteStream` to read it \
                 as it arrives; for a JSON array, wrap the list in a type of your own"
            ),
        );
    }
    if verb == "head" && method.output.kind.is_stream() {
        cx.error_spanned_by(
            method.output.ok,
            "a HEAD response has no body to stream: return `Result<(), comms::Error>` or `Result<comms::Response, comms::Error>`",
        );
    }
    if let Some(idempotent) = &method.idempotent
        && method.output.kind.is_stream()
    {
        cx.error_spanned_by(
            idempotent,
            format!(
                "`{name}` is marked `idempotent`, and a streamed answer cannot be kept to answer a \
                 retry with the same `Idempotency-Key`: drop `idempotent` (a stream's retries end \
                 at its head), or return a type that is read whole"
            ),
        );
    }

    for arg in &method.args {
        if matches!(arg.kind, ArgKind::Body { .. }) && is_bytes(arg.ty) {
            cx.error_spanned_by(
                arg.ty,
                "a `#[body]` is sent as JSON, where these bytes would be an array of numbers, not \
                 the bytes themselves: write `#[body(raw)]` to send them as they are (as \
                 `application/octet-stream`, or a `#[header(\"Content-Type\")]` argument's type); \
                 for a JSON array, wrap the list in a type of your own",
            );
        }
    }

    let mut query_names: Vec<&str> = Vec::new();
    // Each header name in lower case, with the argument that sets it and its spelling there.
    let mut header_names: Vec<(String, String, &str)> = Vec::new();
    for arg in &method.args {
        match &arg.kind {
            ArgKind::QueryFlatten
                if crate::ast::outer_ident(arg.ty).is_some_and(|i| i == "Option") =>
            {
                cx.error_spanned_by(
                    arg.ty,
                    "`#[query(flatten)]` takes a struct, whose fields are the pairs: a `None` \
                     could not be told from a struct whose fields are all `None`, so make the \
                     fields `Option`s rather than the struct",
                );
            }
            // A list of pairs is neither a struct nor values: told of a map, not sent to a
            // plain `#[query]`, which refuses a pair and sends it back here.
            ArgKind::QueryFlatten if pair_in(arg.ty).is_some() => {
                cx.error_spanned_by(
                    arg.ty,
                    format!(
                        "`#[query(flatten)]` takes a struct or a map, whose keys name the \
                         values, and a list of pairs is neither: for keys known only at run \
                         time, use a map, `{PAIRS_MAP}` (a `Vec<String>` value for a key that \
                         repeats)"
                    ),
                );
            }
            ArgKind::QueryFlatten if is_single_value(arg.ty) => {
                cx.error_spanned_by(
                    arg.ty,
                    "`#[query(flatten)]` takes a struct (or a map), whose fields are the pairs; \
                     one value, or a list of them, is a plain `#[query]`",
                );
            }
            ArgKind::Form { .. }
                if crate::ast::outer_ident(arg.ty).is_some_and(|i| i == "Option") =>
            {
                cx.error_spanned_by(
                    arg.ty,
                    "a `#[form]` takes a struct (or a map), whose fields are the form's: a `None` \
                     could not be told from a form whose fields are all `None`, so make the \
                     fields `Option`s rather than the struct",
                );
            }
            // A list of pairs is a form as it is (`&[("a", "1")]`).
            ArgKind::Form { .. } if is_single_value(arg.ty) && pair_in(arg.ty).is_none() => {
                cx.error_spanned_by(
                    arg.ty,
                    "a `#[form]` takes a struct (or a map), whose fields are the form's; one \
                     value, or a list of them, is no form: write a struct with a field for it",
                );
            }
            ArgKind::Query { name, .. } => {
                if let Some(pair) = pair_in(arg.ty) {
                    cx.error_spanned_by(
                        pair,
                        format!(
                            "a pair is not a query value: `#[query]` sends one value (or an \
                             `Option` or a list of values) under the argument's name; for pairs \
                             whose keys are known only at run time, use `#[query(flatten)]` with \
                             a map, `{PAIRS_MAP}`"
                        ),
                    );
                }
                if query_names.contains(&name.as_str()) {
                    cx.error_spanned_by(
                        arg.ident,
                        format!("query key `{name}` is used by two arguments"),
                    );
                }
                query_names.push(name);
            }
            ArgKind::Header { name, .. } => {
                let lower = name.to_ascii_lowercase();
                // A JSON body's server parses it whatever its type, so `#[body]` takes another
                // (`application/merge-patch+json`); a form or multipart one's is its own.
                if lower == "content-type"
                    && let Some(&(body, _, kind @ ("form" | "multipart"))) = bodies.first()
                {
                    cx.error_spanned_by(
                        arg.ident,
                        format!(
                            "`Content-Type` is set by `{body}` (`#[{kind}]`), and a server \
                             parses that body only under its own type: `{}` cannot set it",
                            arg.ident
                        ),
                    );
                }
                match header_names.iter().find(|(seen, ..)| *seen == lower) {
                    Some((_, first, spelling)) if spelling != name => cx.error_spanned_by(
                        arg.ident,
                        format!(
                            "header `{name}` is set by two arguments, `{first}` (as \
                             `{spelling}`) and `{}`: header names are case-insensitive",
                            arg.ident
                        ),
                    ),
                    Some((_, first, _)) => cx.error_spanned_by(
                        arg.ident,
                        format!(
                            "header `{name}` is set by two arguments, `{first}` and `{}`",
                            arg.ident
                        ),
                    ),
                    None => header_names.push((lower, arg.ident.to_string(), name)),
                }
            }
            _ => {}
        }
    }

    // Route parameters against plain arguments.
    let Some(template) = &method.template else {
        return;
    };
    let route = method.route.value();
    let params: Vec<(&str, std::ops::Range<usize>)> =
        template.params(&route).map(|(n, r, _)| (n, r)).collect();
    let plain: Vec<String> = method
        .args
        .iter()
        .filter(|a| matches!(a.kind, ArgKind::Path))
        .map(|a| unraw(a.ident))
        .collect();
    let unmatched: Vec<&(&str, std::ops::Range<usize>)> = params
        .iter()
        .filter(|(param, _)| !method.args.iter().any(|a| unraw(a.ident) == *param))
        .collect();
    let unused: Vec<&String> = plain
        .iter()
        .filter(|p| !params.iter().any(|(q, _)| q == p))
        .collect();
    // As many parameters as arguments that match nothing are as many mistakes (names
    // misspelt or changed on one side), each said once, at the route: each parameter with the
    // argument nearest its name (`<org>` with `org_id`).
    let paired = !unmatched.is_empty() && unmatched.len() == unused.len();
    if paired {
        let mut left: Vec<&String> = unused.clone();
        for (param, range) in &unmatched {
            let nearness = |arg: &&String| {
                let (a, p) = (arg.as_str(), *param);
                match a.contains(p) || p.contains(a) {
                    true => 0,
                    false => crate::suggest::distance(p, a) + 1,
                }
            };
            let (at, _) = left
                .iter()
                .enumerate()
                .min_by_key(|(_, arg)| nearness(arg))
                .expect("as many arguments as parameters");
            let arg = left.remove(at);
            cx.error_at(
                subspan(&method.route, range.clone()),
                format!(
                    "`<{param}>` matches no argument of `{name}`, whose argument `{arg}` is \
                     used nowhere: rename one of them to match"
                ),
            );
        }
    }
    // A route parameter is one value, always there: an `Option` or a list cannot fill it, and
    // would otherwise be told only that it does not implement `Display`.
    for (param, _, trailing) in template.params(&route) {
        let Some(arg) = method
            .args
            .iter()
            .find(|a| matches!(a.kind, ArgKind::Path) && unraw(a.ident) == param)
        else {
            continue;
        };
        let written = match trailing {
            true => format!("<{param}..>"),
            false => format!("<{param}>"),
        };
        let message = match ast::query_shape(arg.ty) {
            Shape::Optional => format!(
                "`{param}` fills `{written}`, a part of every request's path, so it cannot be an \
                 `Option`: make it a `#[query]` (left out when `None`), or declare a method for \
                 each route, one with the segment and one without"
            ),
            Shape::Repeated if trailing => format!(
                "`{param}` fills `{written}` with one value whose `/`s separate its segments \
                 (each encoded), so it cannot be a list: pass the segments joined, \
                 `segments.join(\"/\")`, as a `&str`"
            ),
            Shape::Repeated => format!(
                "`{param}` fills `{written}`, one segment of the path, so it cannot be a list: \
                 make it a repeated `#[query]`, or a trailing `<{param}..>` filled with the \
                 segments joined by `/`"
            ),
            Shape::Scalar => continue,
        };
        cx.error_spanned_by(arg.ty, message);
    }
    for (param, range) in &params {
        if plain.iter().any(|p| p == param) {
            continue;
        }
        if let Some(arg) = method.args.iter().find(|a| unraw(a.ident) == *param) {
            cx.error_spanned_by(
                arg.ident,
                format!("`{param}` fills `<{param}>` in the route, so it cannot also be a `#[query]`, `#[body]` or `#[header]`"),
            );
            continue;
        }
        if paired {
            continue;
        }
        let unused = unused.iter().map(|p| p.as_str());
        cx.error_at(
            subspan(&method.route, range.clone()),
            format!(
                "`<{param}>` matches no argument of `{name}`{}",
                did_you_mean(param, unused)
            ),
        );
    }
    for arg in method
        .args
        .iter()
        .filter(|a| matches!(a.kind, ArgKind::Path))
    {
        let arg_name = unraw(arg.ident);
        if paired || params.iter().any(|(p, _)| *p == arg_name) {
            continue;
        }
        // A parameter in another router's syntax (axum 0.7's `:id`, `*path`) is a literal
        // segment here (`/jobs/<id>/:cancel` is a route of its own).
        let foreign = template.segments.iter().find_map(|segment| match segment {
            Segment::Static(range)
                if route[range.clone()].strip_prefix([':', '*']) == Some(arg_name.as_str()) =>
            {
                Some(range.clone())
            }
            _ => None,
        });
        if let Some(range) = foreign {
            let written = &route[range.clone()];
            let instead = match written.starts_with('*') {
                true => format!("<{arg_name}..>"),
                false => format!("<{arg_name}>"),
            };
            cx.error_at(
                subspan(&method.route, range),
                format!(
                    "`{written}` is a literal segment in a comms route; a parameter is written \
                     `{instead}`"
                ),
            );
            continue;
        }
        let unknown = params
            .iter()
            .filter(|(p, _)| !plain.iter().any(|q| q == p))
            .map(|(p, _)| *p);
        let hint = match crate::suggest::closest(&arg_name, unknown) {
            Some(near) => format!(" (the route has `<{near}>`: did you mean `<{arg_name}>`?)"),
            None => String::new(),
        };
        cx.error_spanned_by(
            arg.ident,
            format!(
                "argument `{arg_name}` is used nowhere{hint}: add `<{arg_name}>` to the route, or mark it `#[query]`, `#[body]` or `#[header(\"Name\")]`"
            ),
        );
    }
}

/// Whether `ty`, behind references, holds bytes that a user would expect sent as they are: a
/// slice, array, `Vec` or boxed slice of `u8`, or `Bytes`/`BytesMut`.
fn is_bytes(ty: &syn::Type) -> bool {
    let u8_slice = |ty: &syn::Type| matches!(ungrouped(ty), syn::Type::Slice(s) if is_primitive(&s.elem, "u8"));
    match ungrouped(ty) {
        syn::Type::Reference(r) => is_bytes(&r.elem),
        syn::Type::Array(a) => is_primitive(&a.elem, "u8"),
        slice @ syn::Type::Slice(_) => u8_slice(slice),
        path @ syn::Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last();
            match outer_ident(path).map(|i| i.to_string()).as_deref() {
                Some("Bytes" | "BytesMut") => {
                    last.is_some_and(|l| matches!(l.arguments, syn::PathArguments::None))
                }
                Some("Vec") => generic_arg(path).is_some_and(|item| is_primitive(item, "u8")),
                Some("Box") => generic_arg(path).is_some_and(u8_slice),
                _ => false,
            }
        }
        _ => false,
    }
}

/// What to flatten for query pairs known only at run time.
const PAIRS_MAP: &str = "&BTreeMap<String, String>";

/// The tuple in `ty`, itself or as the item of an `Option`, a `Vec`, a slice or an array
/// (behind references): a pair, which is no query value.
fn pair_in(ty: &syn::Type) -> Option<&syn::Type> {
    match ungrouped(ty) {
        syn::Type::Tuple(t) if !t.elems.is_empty() => Some(ty),
        syn::Type::Reference(r) => pair_in(&r.elem),
        syn::Type::Slice(s) => pair_in(&s.elem),
        syn::Type::Array(a) => pair_in(&a.elem),
        path @ syn::Type::Path(p) if p.qself.is_none() => {
            match outer_ident(path).map(|i| i.to_string()).as_deref() {
                Some("Option" | "Vec") => pair_in(generic_arg(path)?),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `ty`, looked at through references, is written as a type that serializes as one
/// value or a sequence of them rather than as named fields: a string, a primitive, a `Vec`, a
/// slice, an array or a tuple.
fn is_single_value(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => is_single_value(&r.elem),
        syn::Type::Paren(p) => is_single_value(&p.elem),
        syn::Type::Slice(_) | syn::Type::Array(_) | syn::Type::Tuple(_) => true,
        syn::Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|last| {
            matches!(
                last.ident.to_string().as_str(),
                "str"
                    | "String"
                    | "Vec"
                    | "bool"
                    | "char"
                    | "u8"
                    | "u16"
                    | "u32"
                    | "u64"
                    | "u128"
                    | "usize"
                    | "i8"
                    | "i16"
                    | "i32"
                    | "i64"
                    | "i128"
                    | "isize"
                    | "f32"
                    | "f64"
            )
        }),
        _ => false,
    }
}

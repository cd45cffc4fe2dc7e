//! The model of an annotated trait. It keeps the original syn nodes so that every error and
//! every generated check can point at the user's tokens.

use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemTrait, LitStr, Pat, ReturnType, Token, TraitItem, TraitItemFn, Type};

use crate::attr::{self, ArgAttr, Args, VerbAttr};
use crate::ctxt::Ctxt;
use crate::template::{self, Template};

pub(crate) struct Service<'a> {
    pub(crate) item: &'a ItemTrait,
    pub(crate) args: Args,
    pub(crate) methods: Vec<Method<'a>>,
}

pub(crate) struct Method<'a> {
    pub(crate) item: &'a TraitItemFn,
    pub(crate) verb: Ident,
    pub(crate) route: LitStr,
    /// `None` when the route did not parse (its errors are reported already).
    pub(crate) template: Option<Template>,
    /// The `idempotent` option, when given.
    pub(crate) idempotent: Option<Ident>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) args: Vec<Arg<'a>>,
    pub(crate) output: Output<'a>,
}

pub(crate) struct Arg<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) kind: ArgKind<'a>,
}

pub(crate) enum ArgKind<'a> {
    /// No attribute: must name a route parameter.
    Path,
    Query {
        name: String,
        shape: Shape,
    },
    /// `#[query(flatten)]`: the fields of a `Serialize` value, each a query key.
    QueryFlatten,
    /// `#[body]`, with its attribute for error spans.
    Body {
        attr: &'a syn::Attribute,
    },
    /// `#[body(raw)]`: bytes or text sent as they are, with its attribute for error spans.
    RawBody {
        attr: &'a syn::Attribute,
    },
    /// `#[form]`: the body as an HTML form, with its attribute for error spans.
    Form {
        attr: &'a syn::Attribute,
    },
    /// `#[multipart]`: the body as `multipart/form-data`, with its attribute for error spans.
    Multipart {
        attr: &'a syn::Attribute,
    },
    Header {
        name: String,
        optional: bool,
    },
}

/// How a query argument becomes pairs.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// One pair.
    Scalar,
    /// One pair, or none for `None`.
    Optional,
    /// One pair per item.
    Repeated,
}

pub(crate) struct Output<'a> {
    /// The whole declared return type (`Result<T, Error>`).
    pub(crate) ty: &'a Type,
    /// Its success type, `T`.
    pub(crate) ok: &'a Type,
    pub(crate) kind: OutputKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    /// `()`: the body is ignored.
    Unit,
    /// `comms::Response`: returned as it is.
    Raw,
    /// `Option<T>`: a 404 is `None`, a success `T` decoded from JSON.
    Optional,
    /// `Option<()>`: a 404 is `None`, a success `Some(())`, its body ignored.
    OptionalUnit,
    /// `ResponseValue<T>`: `T` decoded from JSON, with the status and headers.
    Value,
    /// `ResponseValue<()>`: the status and headers, the body ignored.
    ValueUnit,
    /// Anything else: decoded from JSON.
    Json,
    /// `comms::ByteStream`: the body handed over as it arrives.
    Bytes,
    /// `comms::JsonLines<T>`: newline-delimited JSON items of `T` as they arrive.
    JsonLines,
}

impl OutputKind {
    /// Whether the body is handed over as it arrives rather than read whole.
    pub(crate) fn is_stream(self) -> bool {
        matches!(self, OutputKind::Bytes | OutputKind::JsonLines)
    }
}

impl<'a> Service<'a> {
    pub(crate) fn from_trait(cx: &Ctxt, item: &'a ItemTrait, args: Args) -> Service<'a> {
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(&item.generics, "a service trait cannot be generic");
        } else if let Some(clause) = &item.generics.where_clause {
            cx.error_spanned_by(
                clause,
                "a service trait cannot have a `where` clause: write its bounds as supertraits \
                 (`pub trait Users: Send + Sync`)",
            );
        }
        if let Some(unsafety) = &item.unsafety {
            cx.error_spanned_by(unsafety, "a service trait cannot be `unsafe`");
        }
        // Still on the trait: written twice, the second below the first (removed from what
        // this one gives back, so that it does not expand the trait a second time).
        if let Some(again) = item.attrs.iter().find(|a| attr::is_service_client(a)) {
            cx.error_spanned_by(
                again,
                "`#[service_client]` is applied twice: remove this one",
            );
        }
        // `#[async_trait]` below this attribute is still on the trait; above it, it has already
        // rewritten the methods (into `fn`s with lifetimes named `'async_trait`), and each
        // would be refused for what it no longer says.
        const NO_ASYNC_TRAIT: &str = "a `#[service_client]` trait needs no `#[async_trait]`: \
            its `async fn`s already return `Send` futures; remove it here and from the trait's \
            implementations";
        if let Some(attr) = item.attrs.iter().find(|a| attr::is_async_trait(a)) {
            cx.error_spanned_by(attr, NO_ASYNC_TRAIT);
        }
        let rewritten = item.items.iter().any(|i| match i {
            TraitItem::Fn(f) => f
                .sig
                .generics
                .lifetimes()
                .any(|l| l.lifetime.ident == "async_trait"),
            _ => false,
        });
        if rewritten {
            cx.error_spanned_by(&item.ident, NO_ASYNC_TRAIT);
            return Service {
                item,
                args,
                methods: Vec::new(),
            };
        }
        let mut methods = Vec::new();
        for trait_item in &item.items {
            match trait_item {
                TraitItem::Fn(f) => {
                    if let Some(m) = Method::from_item(cx, f) {
                        methods.push(m);
                    }
                }
                TraitItem::Verbatim(tokens) => match with_visibility(tokens) {
                    Some((vis, f)) => {
                        cx.error_spanned_by(
                            vis,
                            "a trait's methods have no visibility of their own (they are the \
                             trait's): remove it",
                        );
                        // What else is wrong with it, reported in the same build.
                        let _ = Method::from_item(cx, &f);
                    }
                    None => cx.error_spanned_by(trait_item, NOT_A_METHOD),
                },
                // Expanded only after the attribute has read the trait: its methods are
                // never seen.
                TraitItem::Macro(m) => cx.error_spanned_by(
                    m,
                    "a macro in a `#[service_client]` trait is expanded only after the \
                     attribute has read the trait, so its methods would be neither checked nor \
                     generated: write them out",
                ),
                other => cx.error_spanned_by(other, NOT_A_METHOD),
            }
        }
        Service {
            item,
            args,
            methods,
        }
    }
}

const NOT_A_METHOD: &str =
    "a service trait holds only `async fn` methods with an HTTP verb attribute";

/// A method written with a visibility (`pub async fn ..`), which Rust refuses in a trait and
/// syn gives back as tokens: the visibility, and the method without it.
pub(crate) fn with_visibility(
    tokens: &proc_macro2::TokenStream,
) -> Option<(syn::Visibility, TraitItemFn)> {
    let parser = |input: syn::parse::ParseStream| {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis: syn::Visibility = input.parse()?;
        let mut f: TraitItemFn = input.parse()?;
        f.attrs = attrs;
        Ok((vis, f))
    };
    let (vis, f) = syn::parse::Parser::parse2(parser, tokens.clone()).ok()?;
    (!matches!(vis, syn::Visibility::Inherited)).then_some((vis, f))
}

impl<'a> Method<'a> {
    fn from_item(cx: &Ctxt, f: &'a TraitItemFn) -> Option<Method<'a>> {
        let sig = &f.sig;
        let name = &sig.ident;
        let mut verb: Option<VerbAttr> = None;
        let mut complete = true;
        if attr::report_misspellings(cx, &f.attrs, attr::VERBS) {
            complete = false;
        }
        if attr::report_method_mistakes(cx, &f.attrs) {
            complete = false;
        }
        for a in f.attrs.iter().filter(|a| gives_a_verb(a)) {
            cx.error_spanned_by(
                a,
                format!(
                    "`{name}`'s verb cannot be given by `#[cfg_attr]`: the macro reads the \
                     route before the condition is known; put the whole method under `#[cfg]`, \
                     once for each route"
                ),
            );
            complete = false;
        }
        for a in f.attrs.iter().filter(|a| attr::is_verb(a)) {
            if verb.is_some() {
                cx.error_spanned_by(a, format!("`{name}` has more than one HTTP verb attribute"));
                continue;
            }
            match attr::parse_verb(cx, a) {
                Some(v) => verb = Some(v),
                None => complete = false,
            }
        }
        if verb.is_none() && complete {
            // Said alone: what else is wrong with a method that is no HTTP method (a helper
            // with a body, say) is beside the point.
            let message = match f.default {
                Some(_) => format!(
                    "`{name}` has a body and no HTTP verb: a service trait holds only HTTP \
                     methods, so put helpers in a trait of their own, implemented for the client"
                ),
                None => format!(
                    "`{name}` has no HTTP verb: add one of `#[get(\"/path\")]`, `#[post(..)]`, \
                     `#[put(..)]`, `#[patch(..)]`, `#[delete(..)]`, `#[head(..)]`"
                ),
            };
            cx.error_spanned_by(name, message);
            return None;
        }
        if name == "executor" || name == "with" {
            cx.error_spanned_by(
                name,
                format!(
                    "`{name}` is a method of the generated client itself, which would hide this \
                     one: give it another name"
                ),
            );
        }
        if let Some(body) = &f.default {
            cx.error_spanned_by(body, "service methods are declared without a body");
        }
        if sig.asyncness.is_none() {
            cx.error_spanned_by(sig.fn_token, format!("`{name}` must be an `async fn`"));
        }
        if sig.constness.is_some()
            || sig.abi.is_some()
            || !matches!(sig.safety, syn::Safety::Default)
        {
            cx.error_spanned_by(
                &sig.ident,
                "service methods cannot be `const`, `unsafe` or `extern`",
            );
        }
        let generics = &sig.generics;
        if generics.type_params().next().is_some() || generics.const_params().next().is_some() {
            cx.error_spanned_by(
                generics,
                format!("`{name}` cannot be generic: the generated client needs concrete types"),
            );
        } else if !generics.params.is_empty() {
            cx.error_spanned_by(
                generics,
                format!("`{name}` cannot name lifetimes: leave them out (`id: &str`)"),
            );
        } else if let Some(clause) = &generics.where_clause {
            cx.error_spanned_by(
                clause,
                format!("`{name}` cannot have a `where` clause: its types are concrete"),
            );
        }
        if let Some(v) = &sig.variadic {
            cx.error_spanned_by(v, "service methods cannot be variadic");
        }
        match sig.receiver() {
            Some(r) if is_ref_self(r) => {}
            // `&'a self`: `'a` is declared on the method, which is refused already.
            Some(r) if self_lifetime(r).is_some() && !generics.params.is_empty() => {}
            Some(r) if self_lifetime(r).is_some() => cx.error_spanned_by(
                r,
                format!(
                    "`{name}` borrows its service for the call alone (a generated server lends \
                     it for one request): write `&self`, without a lifetime"
                ),
            ),
            Some(r) => cx.error_spanned_by(r, "service methods take `&self`"),
            None => cx.error_at(
                sig.paren_token.span.open(),
                format!("`{name}` needs `&self` as its first argument"),
            ),
        }
        let output = parse_output(cx, &sig.output, name);

        let mut args = Vec::new();
        let mut ok_args = true;
        for input in &sig.inputs {
            let FnArg::Typed(pt) = input else { continue };
            let ident = match &*pt.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    // Rust refuses it in a declaration without a body; an implementation may
                    // still take the argument as `mut`.
                    if let Some(mutability) = &p.mutability {
                        cx.error_spanned_by(
                            mutability,
                            format!(
                                "a trait's declaration takes no `mut`: write `{}`, and `mut` in \
                                 the implementation if it needs one",
                                p.ident
                            ),
                        );
                        ok_args = false;
                    }
                    &p.ident
                }
                other => {
                    cx.error_spanned_by(other, "service arguments must be plain names (`id: u64`)");
                    ok_args = false;
                    continue;
                }
            };
            let mut kind: Option<(ArgAttr, &syn::Attribute)> = None;
            if let Some(a) = pt.attrs.iter().find(|a| compiles_out(a)) {
                cx.error_spanned_by(
                    a,
                    format!(
                        "`{ident}` cannot be under `#[cfg]`: the generated client passes every \
                         argument it declares; put the whole method under `#[cfg]`, once with \
                         the argument and once without"
                    ),
                );
                ok_args = false;
                continue;
            }
            if attr::report_misspellings(cx, &pt.attrs, attr::ARG_ATTRS) {
                ok_args = false;
                continue;
            }
            let mut foreign = pt.attrs.iter().filter(|a| attr::is_foreign_arg_attr(a));
            if let Some(a) = foreign.next() {
                let name = quote::ToTokens::to_token_stream(a.path())
                    .to_string()
                    .replace(' ', "");
                if name == "doc" {
                    cx.error_spanned_by(
                        a,
                        "an argument cannot have a doc comment: say what it is in the method's",
                    );
                    ok_args = false;
                    continue;
                }
                cx.error_spanned_by(
                    a.path(),
                    format!(
                        "unknown argument attribute `#[{name}]`: an argument is a route \
                         parameter (no attribute), `#[query]` (`#[query(flatten)]` for a \
                         struct's fields), `#[body]` (JSON; `#[body(raw)]` for bytes or text), \
                         `#[form]`, `#[multipart]` or `#[header(\"Name\")]`"
                    ),
                );
                ok_args = false;
                continue;
            }
            for a in pt.attrs.iter().filter(|a| attr::is_arg_attr(a)) {
                let Some(parsed) = attr::parse_arg_attr(cx, a) else {
                    ok_args = false;
                    continue;
                };
                if let Some((_, first)) = &kind {
                    cx.error_spanned_by(
                        a,
                        format!(
                            "`{ident}` already has `#[{}]`; an argument is one of path, `#[query]`, `#[body]`, `#[form]`, `#[multipart]` or `#[header]`",
                            first.path().get_ident().map(|i| i.to_string()).unwrap_or_default()
                        ),
                    );
                    continue;
                }
                kind = Some((parsed, a));
            }
            let ty = &*pt.ty;
            if is_json_wrapper(ty) {
                cx.error_spanned_by(
                    ty,
                    format!(
                        "this `Json<..>` is a web framework's wrapper; comms writes and reads \
                         JSON itself: take the value, `#[body] {ident}: &T`"
                    ),
                );
                ok_args = false;
                continue;
            }
            let kind = match kind {
                None => ArgKind::Path,
                Some((ArgAttr::Body, a)) => ArgKind::Body { attr: a },
                Some((ArgAttr::RawBody, a)) => ArgKind::RawBody { attr: a },
                Some((ArgAttr::Form, a)) => ArgKind::Form { attr: a },
                Some((ArgAttr::Multipart, a)) => ArgKind::Multipart { attr: a },
                Some((ArgAttr::Query { rename, flatten }, _)) => match flatten {
                    Some(_) => ArgKind::QueryFlatten,
                    // A list that may be absent: an empty one is absent already.
                    None if matches!(query_shape(ty), Shape::Optional)
                        && generic_arg(ungrouped(ty))
                            .is_some_and(|inner| !matches!(query_shape(inner), Shape::Scalar)) =>
                    {
                        cx.error_spanned_by(
                            ty,
                            "a `#[query]` list is not optional: an empty `Vec<T>` sends no \
                             pair, and a missing key is read back as an empty one; write \
                             `Vec<T>` (or `Option<T>` for one value)",
                        );
                        ok_args = false;
                        continue;
                    }
                    None => ArgKind::Query {
                        name: rename.map(|r| r.value()).unwrap_or_else(|| unraw(ident)),
                        shape: query_shape(ty),
                    },
                },
                Some((ArgAttr::Header { name }, _)) => ArgKind::Header {
                    name: name.value(),
                    optional: outer_ident(ty).is_some_and(|i| i == "Option"),
                },
            };
            args.push(Arg { ident, ty, kind });
        }

        let verb = verb?;
        let template = match template::parse(&verb.route.value()) {
            Ok(t) => Some(t),
            Err(errors) => {
                let text = verb.route.value();
                for e in errors {
                    // Stable compilers underline the whole literal: name the spot as well.
                    let spot = &text[e.span.clone()];
                    let whole = spot.is_empty() || spot == text;
                    let message = if whole || e.kind == template::ErrorKind::MissingLeadingSlash {
                        e.kind.to_string()
                    } else {
                        format!("{}, at `{spot}`", e.kind)
                    };
                    cx.error_at(subspan(&verb.route, e.span), message);
                }
                None
            }
        };
        let output = output?;
        if !ok_args {
            return None;
        }
        Some(Method {
            item: f,
            verb: verb.verb,
            route: verb.route,
            template,
            idempotent: verb.idempotent,
            timeout_ms: verb.timeout_ms,
            args,
            output,
        })
    }

    pub(crate) fn ident(&self) -> &Ident {
        &self.item.sig.ident
    }

    /// Its `#[cfg]` attributes as written, to compare with another method's.
    pub(crate) fn cfgs(&self) -> String {
        cfgs(&self.item.attrs)
    }

    /// The predicates of its `#[cfg]` attributes, all of which must hold for it to be compiled.
    pub(crate) fn cfg_predicates(&self) -> impl Iterator<Item = proc_macro2::TokenStream> + '_ {
        cfg_attrs(&self.item.attrs)
            .filter_map(|a| a.meta.require_list().ok().map(|list| list.tokens.clone()))
    }
}

/// The `#[cfg]` attributes among `attrs`.
pub(crate) fn cfg_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg"))
}

/// The `#[cfg]` attributes among `attrs`, as written.
pub(crate) fn cfgs(attrs: &[syn::Attribute]) -> String {
    let cfgs = cfg_attrs(attrs);
    quote::quote!(#(#cfgs)*).to_string()
}

/// Whether an argument's attribute may compile the argument out, or change what comms reads
/// of it: `#[cfg]`, or a `#[cfg_attr]` that gives one, or gives one of comms' own
/// (`#[cfg_attr(feature = "x", query)]`). A `#[cfg_attr]` giving a lint level is left alone.
pub(crate) fn compiles_out(a: &syn::Attribute) -> bool {
    // `r#cfg` is `cfg` to the compiler.
    if a.path().get_ident().map(unraw).as_deref() == Some("cfg") {
        return true;
    }
    cfg_attr_gives(a, |name| {
        name == "cfg" || name == "cfg_attr" || attr::ARG_ATTRS.contains(&name)
    })
}

/// Whether `a` is a `#[cfg_attr]` giving an HTTP verb, which comms would not see: the
/// attributes it gives exist only once the compiler has read the predicate.
pub(crate) fn gives_a_verb(a: &syn::Attribute) -> bool {
    cfg_attr_gives(a, |name| attr::VERBS.contains(&name))
}

/// Whether `a` is a `#[cfg_attr]` giving an attribute named as `named` says (or one that does
/// not parse as a list).
fn cfg_attr_gives(a: &syn::Attribute, named: impl Fn(&str) -> bool) -> bool {
    if a.path().get_ident().map(unraw).as_deref() != Some("cfg_attr") {
        return false;
    }
    let Ok(list) = a.meta.require_list() else {
        return true;
    };
    // Past the predicate: the attributes it gives, each named first.
    let mut given = list
        .tokens
        .clone()
        .into_iter()
        .skip_while(|t| !matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','));
    let mut at_name = true;
    given.any(|t| match t {
        proc_macro2::TokenTree::Punct(p) if p.as_char() == ',' => {
            at_name = true;
            false
        }
        proc_macro2::TokenTree::Ident(name) if at_name => {
            at_name = false;
            named(&unraw(&name))
        }
        _ => {
            at_name = false;
            false
        }
    })
}

/// The lifetime of `&'a self` (other than `'_`), which `&self` leaves out.
fn self_lifetime(r: &syn::Receiver) -> Option<&syn::Lifetime> {
    match &r.kind {
        syn::ReceiverKind::Reference(_, Some(lifetime), None)
            if r.mutability.is_none() && lifetime.ident != "_" =>
        {
            Some(lifetime)
        }
        _ => None,
    }
}

/// `&self`, or the same written out, `self: &Self`.
pub(crate) fn is_ref_self(r: &syn::Receiver) -> bool {
    let written_out = |ty: &Type| {
        matches!(ty, Type::Reference(re)
            if re.lifetime.is_none() && re.mutability.is_none() && is_bare(&re.elem, "Self"))
    };
    r.mutability.is_none()
        && match &r.kind {
            syn::ReceiverKind::Reference(_, lifetime, None) => {
                lifetime.as_ref().is_none_or(|l| l.ident == "_")
            }
            syn::ReceiverKind::Typed(_, ty) => written_out(ty),
            _ => false,
        }
}

fn parse_output<'a>(cx: &Ctxt, output: &'a ReturnType, name: &Ident) -> Option<Output<'a>> {
    let wrong = |at: &dyn quote::ToTokens| {
        cx.error_spanned_by(
            at.to_token_stream(),
            format!(
                "`{name}` must return `Result<T, comms::Error>`, where `T` is `()`, a type \
                 that implements `serde::de::DeserializeOwned`, an `Option` of one (`None` on \
                 404), `comms::ResponseValue<T>`, `comms::Response`, `comms::ByteStream` or \
                 `comms::JsonLines<T>`"
            ),
        );
        None
    };
    let ty = match output {
        ReturnType::Type(_, ty) => &**ty,
        ReturnType::Default => return wrong(name),
    };
    let Some(args) = result_args(ty) else {
        return wrong(ty);
    };
    let types: Vec<&Type> = type_args(args).collect();
    // `Result<T>` is an alias of the user's (`type Result<T> = Result<T, comms::Error>`), and
    // an error named in the user's scope (`Error`, `CommsError`, `errors::Error`) may be
    // `comms::Error` imported or re-exported: the compiler checks what they stand for
    // (`__private::comms_result`).
    let ok = match (aliased_ok(ty), &types[..]) {
        (Some(ok), _) => ok,
        (None, [ok, Type::Path(err)]) if err.qself.is_none() => ok,
        (None, [_, err]) => return wrong(*err),
        _ => return wrong(ty),
    };
    // comms' own types, as written plainly or through `comms::`: another path ending in the
    // same name (`api::Response`) is the user's own type, decoded from JSON.
    let named = |t: &Type, name: &str| is_named(t, name, &["comms"]);
    let kind = match ok {
        Type::Tuple(t) if t.elems.is_empty() => OutputKind::Unit,
        t if is_named(t, "Response", &[]) && generic_arg(t).is_some() => {
            cx.error_spanned_by(
                t,
                "this `Response<..>` is not `comms::Response`, which has no type parameter: \
                 return `comms::Response` for the answer as it came, or the type to decode \
                 its JSON body into",
            );
            return None;
        }
        t if is_json_wrapper(t) => {
            cx.error_spanned_by(
                t,
                "this `Json<..>` is a web framework's wrapper; comms reads JSON itself: \
                 return the type to decode the body into, `Result<T, comms::Error>`",
            );
            return None;
        }
        t if named(t, "Response") => OutputKind::Raw,
        t if named(t, "ByteStream") => OutputKind::Bytes,
        t if named(t, "JsonLines") => match generic_arg(t) {
            Some(_) => OutputKind::JsonLines,
            None => {
                cx.error_spanned_by(
                    t,
                    "`JsonLines` needs the type of its items: `comms::JsonLines<T>`, where `T` \
                     implements `serde::de::DeserializeOwned`",
                );
                return None;
            }
        },
        t if is_named(t, "Option", &["std", "core"]) && generic_arg(t).is_some() => {
            let inner = generic_arg(t).expect("checked");
            // Within a type, a bare name may be the user's own type, decoded from JSON: only
            // comms' written as such is refused.
            let what = if comms_type(inner, "Response") {
                Some("`comms::Response`")
            } else if comms_type(inner, "ResponseValue") {
                Some("`comms::ResponseValue<T>`")
            } else {
                None
            };
            if let Some(what) = what {
                cx.error_spanned_by(
                    t,
                    format!(
                        "`{name}` cannot return an optional {what}: return it alone, and a 404 \
                         arrives as `Err(comms::Error::NotFound(_))`; or return `Option<T>`"
                    ),
                );
                return None;
            }
            if named(inner, "ByteStream") || named(inner, "JsonLines") {
                cx.error_spanned_by(
                    t,
                    format!(
                        "`{name}` cannot return an optional stream: return the stream itself, \
                         and a 404 arrives as `Err(comms::Error::NotFound(_))`"
                    ),
                );
                return None;
            }
            match inner {
                Type::Tuple(unit) if unit.elems.is_empty() => OutputKind::OptionalUnit,
                _ => OutputKind::Optional,
            }
        }
        t if named(t, "ResponseValue") => match generic_arg(t) {
            Some(inner)
                if ["Response", "ResponseValue", "ByteStream", "JsonLines"]
                    .iter()
                    .any(|own| comms_type(inner, own)) =>
            {
                cx.error_spanned_by(
                    inner,
                    format!(
                        "`{name}`'s `ResponseValue` holds a value decoded from JSON: return \
                         `comms::Response` alone (it has the status and headers), or a stream \
                         (`comms::ByteStream`, `comms::JsonLines<T>`) alone"
                    ),
                );
                return None;
            }
            Some(Type::Tuple(unit)) if unit.elems.is_empty() => OutputKind::ValueUnit,
            Some(_) => OutputKind::Value,
            None => OutputKind::Json,
        },
        _ => OutputKind::Json,
    };
    if let Some(opaque) = opaque_within(ok) {
        let what = match opaque {
            Type::Infer(_) => "`_`",
            _ => "`impl Trait`",
        };
        cx.error_spanned_by(
            opaque,
            format!("`{name}` decodes its answer into a type it names: write the type rather than {what}"),
        );
        return None;
    }
    let decoded = match kind {
        OutputKind::Json => Some(ok),
        OutputKind::Optional | OutputKind::Value | OutputKind::JsonLines => generic_arg(ok),
        _ => None,
    };
    if let Some(borrowed) = decoded.and_then(borrowed_within) {
        cx.error_spanned_by(
            borrowed,
            format!(
                "`{name}` decodes its answer into a value that owns its data: return `String` \
                 rather than `&str`, `Vec<T>` rather than `&[T]`"
            ),
        );
        return None;
    }
    Some(Output { ty, ok, kind })
}

/// Whether `ty` is comms' type `name` written through its crate (`comms::Response`): within
/// another type, the bare name may be the user's own.
fn comms_type(ty: &Type, name: &str) -> bool {
    let qualified = matches!(ty, Type::Path(p) if p.path.segments.len() > 1);
    qualified && is_named(ty, name, &["comms"])
}

/// The first reference within a type (`&str` in `Vec<&str>` or `(u32, &str)`), which a value
/// decoded from a body (a response's, or a served request's) cannot hold once the body is gone.
pub(crate) fn borrowed_within(ty: &Type) -> Option<&Type> {
    first_within(ty, |ty| matches!(ty, Type::Reference(_)))
}

/// The first `impl Trait` or `_` within a type (`impl Deserialize` in
/// `Vec<impl Deserialize>`): a value decoded from a body is of a type the client names.
pub(crate) fn opaque_within(ty: &Type) -> Option<&Type> {
    first_within(ty, |ty| matches!(ty, Type::ImplTrait(_) | Type::Infer(_)))
}

/// The first type `found` picks in `ty`, itself first, then what it is made of: the types in
/// parentheses, slices, arrays, references, tuples and the generic arguments of a path
/// (associated types' too).
fn first_within(ty: &Type, found: fn(&Type) -> bool) -> Option<&Type> {
    if found(ty) {
        return Some(ty);
    }
    match ty {
        Type::Paren(inner) => first_within(&inner.elem, found),
        Type::Group(inner) => first_within(&inner.elem, found),
        Type::Slice(inner) => first_within(&inner.elem, found),
        Type::Array(inner) => first_within(&inner.elem, found),
        Type::Reference(inner) => first_within(&inner.elem, found),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(|ty| first_within(ty, found)),
        Type::Path(path) => path.path.segments.iter().find_map(|segment| {
            let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(ty) => first_within(ty, found),
                syn::GenericArgument::AssocType(assoc) => first_within(&assoc.ty, found),
                _ => None,
            })
        }),
        _ => None,
    }
}

/// The generic arguments of a type written `Result<..>`, or under an alias whose name ends
/// in `Result` (`ApiResult<..>`), its path, if any, aside.
fn result_args(ty: &Type) -> Option<&Punctuated<syn::GenericArgument, Token![,]>> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args)
            if p.qself.is_none() && last.ident.to_string().ends_with("Result") =>
        {
            Some(&args.args)
        }
        _ => None,
    }
}

/// The types among generic arguments.
fn type_args(args: &Punctuated<syn::GenericArgument, Token![,]>) -> impl Iterator<Item = &Type> {
    args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// `T` of a return type written `Result<T>`: an alias, which must stand for
/// `Result<T, comms::Error>`.
pub(crate) fn aliased_ok(ty: &Type) -> Option<&Type> {
    match result_args(ty)?.iter().collect::<Vec<_>>()[..] {
        [syn::GenericArgument::Type(ok)] => Some(ok),
        _ => None,
    }
}

/// `T` of a return type `Result<T, E>` whose names the user's scope says: an `E` other than
/// `comms::Error` written out (a bare `Error`, an import under another name, a re-export), or
/// a `Result` under another name (`ApiResult<T, E>`). It must stand for
/// `Result<T, comms::Error>`.
pub(crate) fn scoped_error_ok(ty: &Type) -> Option<&Type> {
    let mut types = type_args(result_args(ty)?);
    let (Some(ok), Some(err), None) = (types.next(), types.next(), types.next()) else {
        return None;
    };
    let std_result =
        matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"));
    (!std_result || !is_comms(err, "Error")).then_some(ok)
}

/// Whether `ty` is written `comms::{name}` or `::comms::{name}` (or through the `crate` key's
/// path).
fn is_comms(ty: &Type, name: &str) -> bool {
    let Type::Path(p) = ty else { return false };
    let segments: Vec<&syn::PathSegment> = p.path.segments.iter().collect();
    p.qself.is_none()
        && segments.iter().all(|s| s.arguments.is_none())
        && ((segments.len() == 2 && segments[0].ident == "comms" && segments[1].ident == name)
            || through_crate_key(&segments, name))
}

thread_local! {
    /// The segments of the path the `crate` key gives, while the trait it is on is read: a
    /// type written through it (`rpc::Response`) is comms' own.
    static CRATE_KEY: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `read` with `krate` as the path comms' own types may be written through.
pub(crate) fn with_crate_key<R>(krate: Option<&syn::Path>, read: impl FnOnce() -> R) -> R {
    let segments = krate.map_or_else(Vec::new, |path| {
        path.segments.iter().map(|s| s.ident.to_string()).collect()
    });
    let before = CRATE_KEY.with(|key| key.replace(segments));
    let result = read();
    CRATE_KEY.with(|key| key.replace(before));
    result
}

/// Whether `segments` are the end of the `crate` key's path, then `name`: `rpc::Response`,
/// `platform::rpc::Response` or `crate::platform::rpc::Response` for the key
/// `crate::platform::rpc`.
fn through_crate_key(segments: &[&syn::PathSegment], name: &str) -> bool {
    let Some((last, prefix)) = segments.split_last() else {
        return false;
    };
    CRATE_KEY.with(|key| {
        let key = key.borrow();
        last.ident == name
            && !prefix.is_empty()
            && prefix.len() <= key.len()
            && prefix
                .iter()
                .zip(&key[key.len() - prefix.len()..])
                .all(|(s, k)| s.ident == k)
    })
}

/// Whether `ty` is written as the single name `name`, without a path or arguments.
pub(crate) fn is_bare(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident(name))
}

/// Whether `ty` is the primitive type `name`, written bare or by its path in `core` or `std`
/// (`core::primitive::str`).
pub(crate) fn is_primitive(ty: &Type, name: &str) -> bool {
    let Type::Path(p) = ty else { return false };
    if p.qself.is_some() || p.path.segments.iter().any(|s| !s.arguments.is_none()) {
        return false;
    }
    let segments: Vec<&Ident> = p.path.segments.iter().map(|s| &s.ident).collect();
    match segments[..] {
        [last] => p.path.leading_colon.is_none() && last == name,
        [root, module, last] => {
            (root == "core" || root == "std") && module == "primitive" && last == name
        }
        _ => false,
    }
}

/// The first type argument of a generic path type (`T` of `Option<T>` or `Vec<T>`).
pub(crate) fn generic_arg(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// The item type of `Option<T>`, `Vec<T>` and the other collections (`T`), `[T]`, `[T; N]` or
/// `Box<[T]>` (`T`), or a reference to one.
pub(crate) fn item_type(ty: &Type) -> Option<&Type> {
    match ungrouped(ty) {
        Type::Reference(r) => item_type(&r.elem),
        Type::Slice(slice) => Some(ungrouped(&slice.elem)),
        Type::Array(array) => Some(ungrouped(&array.elem)),
        path @ Type::Path(_) => match shared_slice(path) {
            Some(slice) => Some(ungrouped(&slice.elem)),
            None => generic_arg(path).map(ungrouped),
        },
        _ => None,
    }
}

/// Whether `ty` is written `name` or as the item of that name at the root of one of `crates`
/// (`comms::Response`, `::comms::Response`), or in their module named after it
/// (`std::option::Option`); not a type of that name elsewhere in them
/// (`comms::reqwest::Response`). A macro sees no more than the path: a type imported under the
/// name is taken for it.
fn is_named(ty: &Type, name: &str, crates: &[&str]) -> bool {
    let Type::Path(p) = ty else { return false };
    if p.qself.is_some() {
        return false;
    }
    let segments: Vec<&syn::PathSegment> = p.path.segments.iter().collect();
    let in_crate = |first: &syn::PathSegment| crates.iter().any(|c| first.ident == c);
    let written = match segments[..] {
        [last] => last.ident == name,
        [first, last] => in_crate(first) && last.ident == name,
        [first, module, last] => {
            in_crate(first) && module.ident == name.to_lowercase().as_str() && last.ident == name
        }
        _ => false,
    };
    written || (crates.contains(&"comms") && through_crate_key(&segments, name))
}

/// Whether `ty` is a web framework's `Json<T>` written by its path (`axum::Json<T>`,
/// `rocket::serde::json::Json<T>`, behind references): the wrapper those handlers take and
/// return a JSON body in, which comms has no need of. A `Json<T>` written bare, or of another
/// crate, may be a wrapper that serializes as its value (`sqlx::types::Json`), and is left to
/// the compiler.
fn is_json_wrapper(ty: &Type) -> bool {
    const FRAMEWORKS: [&str; 5] = ["axum", "rocket", "actix_web", "poem", "warp"];
    match ungrouped(ty) {
        Type::Reference(r) => is_json_wrapper(&r.elem),
        Type::Path(p) => {
            let segments = &p.path.segments;
            p.qself.is_none()
                && segments.len() > 1
                && FRAMEWORKS.iter().any(|f| segments[0].ident == f)
                && segments.last().is_some_and(|last| {
                    last.ident == "Json"
                        && matches!(last.arguments, syn::PathArguments::AngleBracketed(_))
                })
        }
        _ => false,
    }
}

/// The last path segment's name, looking through references, parentheses and invisible groups.
pub(crate) fn outer_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        Type::Reference(r) => outer_ident(&r.elem),
        Type::Paren(p) => outer_ident(&p.elem),
        Type::Group(g) => outer_ident(&g.elem),
        _ => None,
    }
}

/// The trait with the invisible groups that `macro_rules!` wraps a `$t:ty` in taken out of its
/// types, so that every check reads `Result<$ok, Error>` or `Option<$t>` as it reads the type
/// written out: `()` passed in as `$t` is the unit type, not some other type to decode. A
/// group around a trait object or `impl Trait` stays: without it, `&$t` of `dyn A + Send`
/// would be read as `&dyn A` plus a bound.
pub(crate) fn ungroup_types(mut item: ItemTrait) -> ItemTrait {
    struct Ungroup;
    impl syn::visit_mut::VisitMut for Ungroup {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            while let Type::Group(group) = ty {
                if matches!(&*group.elem, Type::TraitObject(_) | Type::ImplTrait(_)) {
                    break;
                }
                *ty = (*group.elem).clone();
            }
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
    syn::visit_mut::VisitMut::visit_item_trait_mut(&mut Ungroup, &mut item);
    item
}

/// The trait with each method written out as what `async fn` means, `fn m(&self) -> impl
/// Future<Output = T> + Send` (the form the generated trait has), read as the `async fn m(&self)
/// -> T` it is. A method whose future has other bounds, or a body, is left as written, and
/// reported as not an `async fn`.
///
/// Also gives a use of each bound's path as written (`Future`, `Send`), for the expansion to
/// carry: the trait it makes names its own, and an import of the user's for the written-out
/// form would otherwise be reported unused.
pub(crate) fn async_written_out(mut item: ItemTrait) -> (ItemTrait, proc_macro2::TokenStream) {
    let mut written: Vec<syn::Path> = Vec::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            continue;
        };
        if f.sig.asyncness.is_some() || f.default.is_some() {
            continue;
        }
        let syn::ReturnType::Type(_, ty) = &f.sig.output else {
            continue;
        };
        let Type::ImplTrait(imp) = ungrouped(ty) else {
            continue;
        };
        let mut output = None;
        let mut other = false;
        for bound in &imp.bounds {
            let syn::TypeParamBound::Trait(t) = bound else {
                other = true;
                continue;
            };
            let Some(last) = t.path.segments.last() else {
                other = true;
                continue;
            };
            match (last.ident.to_string().as_str(), &last.arguments) {
                ("Send", syn::PathArguments::None) => {}
                ("Future", syn::PathArguments::AngleBracketed(args)) if output.is_none() => {
                    output = match args.args.iter().collect::<Vec<_>>()[..] {
                        [syn::GenericArgument::AssocType(assoc)] if assoc.ident == "Output" => {
                            Some(assoc.ty.clone())
                        }
                        _ => None,
                    };
                    other |= output.is_none();
                }
                _ => other = true,
            }
        }
        if let (Some(output), false) = (output, other) {
            for bound in &imp.bounds {
                if let syn::TypeParamBound::Trait(t) = bound {
                    let mut path = t.path.clone();
                    if let Some(last) = path.segments.last_mut()
                        && !last.arguments.is_none()
                    {
                        last.arguments = syn::PathArguments::AngleBracketed(
                            syn::parse_quote_spanned!(last.ident.span()=> <Output = ()>),
                        );
                    }
                    written.push(path);
                }
            }
            f.sig.asyncness = Some(syn::Token![async](f.sig.fn_token.span));
            f.sig.output = syn::ReturnType::Type(Default::default(), Box::new(output));
        }
    }
    let uses = match written.is_empty() {
        true => proc_macro2::TokenStream::new(),
        false => quote::quote! {
            const _: () = {
                #[allow(dead_code)]
                fn written_out(#(_: &dyn #written),*) {}
            };
        },
    };
    (item, uses)
}

/// `ty` without parentheses, or the invisible group a `macro_rules!` `$t:ty` arrives in (after
/// [`ungroup_types`], only one around a trait object or `impl Trait` is left).
pub(crate) fn ungrouped(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungrouped(&group.elem),
        Type::Paren(paren) => ungrouped(&paren.elem),
        other => other,
    }
}

/// How a value of `ty` goes into a query: one value, an `Option`, or a list (behind
/// references). A route parameter takes only the first (see `valid.rs`).
pub(crate) fn query_shape(ty: &Type) -> Shape {
    match ungrouped(ty) {
        Type::Reference(r) => match ungrouped(&r.elem) {
            Type::Slice(_) | Type::Array(_) => Shape::Repeated,
            other => query_shape(other),
        },
        Type::Slice(_) | Type::Array(_) => Shape::Repeated,
        _ if shared_slice(ty).is_some() => Shape::Repeated,
        _ => match outer_ident(ty).map(|i| i.to_string()).as_deref() {
            Some("Option") => Shape::Optional,
            Some("Vec" | "VecDeque" | "BTreeSet" | "HashSet") => Shape::Repeated,
            _ => Shape::Scalar,
        },
    }
}

/// The slice within a `Box<[T]>`, `Arc<[T]>` or `Rc<[T]>`: a list, built from its items as a
/// `Vec` is, and written as the slice it derefs to.
pub(crate) fn shared_slice(ty: &Type) -> Option<&syn::TypeSlice> {
    let ty = ungrouped(ty);
    if !matches!(outer_ident(ty)?.to_string().as_str(), "Box" | "Arc" | "Rc") {
        return None;
    }
    match ungrouped(generic_arg(ty)?) {
        Type::Slice(slice) => Some(slice),
        _ => None,
    }
}

/// An identifier as written in routes and query names: `r#type` is `type`.
pub(crate) fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// The span of `range` inside a string literal's value, or the whole literal's span when the
/// compiler cannot point inside literals (stable Rust) or the literal has escapes.
pub(crate) fn subspan(lit: &LitStr, range: std::ops::Range<usize>) -> proc_macro2::Span {
    let token = lit.token();
    let repr = token.to_string();
    // Offsets match only for a plain "..." literal without escapes.
    if repr.starts_with('"')
        && !repr.contains('\\')
        && let Some(span) = token.subspan(range.start + 1..range.end + 1)
    {
        return span;
    }
    lit.span()
}

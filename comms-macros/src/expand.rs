//! Code generation: the trait (kept for mocking, its futures `Send`), the `<Trait>Client`
//! struct, its constructors, and the trait's implementation over `comms::Executor`.

use std::borrow::Cow;

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, TraitItem, Type};

use crate::ast::{Arg, ArgKind, Method, OutputKind, Service, Shape};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::template::Segment;
use crate::{ast, valid};

pub(crate) fn service_client(args: TokenStream, input: TokenStream) -> TokenStream {
    let (item, written_out) = match syn::parse2(input.clone()) {
        Ok(item) => ast::async_written_out(ast::ungroup_types(item)),
        Err(_) => return not_a_trait(input),
    };
    let cx = Ctxt::new();
    let args = attr::parse_args(&cx, args);
    let krate = args.krate.clone();
    let output = ast::with_crate_key(krate.as_ref(), || {
        let service = Service::from_trait(&cx, &item, args);
        valid::check(&cx, &service);
        match cx.check() {
            Ok(()) => expand(&service),
            Err(errors) => {
                let mut out = errors.into_compile_error();
                out.extend(fallback(&item));
                out
            }
        }
    });
    let mut output = reach_comms(output, krate.as_ref());
    output.extend(written_out);
    if std::env::var_os("COMMS_MACROS_DEBUG").is_some_and(|v| v == "1") {
        eprintln!(
            "// #[service_client] expansion of `{}`\n{output}\n",
            item.ident
        );
    }
    output
}

/// The generated code with its paths into comms made real. The generators write every such
/// path from `::__comms_crate`, a name no user code has; it becomes `::comms`, or the path the
/// attribute's `crate` key gives (written as given, so a path relative to the trait's module
/// works too), at the spans the generators gave it, so that a diagnostic points where it did.
fn reach_comms(output: TokenStream, krate: Option<&syn::Path>) -> TokenStream {
    let tokens: Vec<TokenTree> = output.into_iter().collect();
    let mut out = TokenStream::new();
    let mut i = 0;
    while let Some(tree) = tokens.get(i) {
        if let [
            TokenTree::Punct(a),
            TokenTree::Punct(b),
            TokenTree::Ident(root),
            ..,
        ] = &tokens[i..]
            && a.as_char() == ':'
            && b.as_char() == ':'
            && root == "__comms_crate"
        {
            match krate {
                None => {
                    out.extend(tokens[i..i + 2].iter().cloned());
                    out.extend([TokenTree::Ident(Ident::new("comms", root.span()))]);
                }
                Some(path) => out.extend(respanned(path.to_token_stream(), root.span())),
            }
            i += 3;
            continue;
        }
        out.extend([match tree {
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), reach_comms(group.stream(), krate));
                inner.set_span(group.span());
                TokenTree::Group(inner)
            }
            other => other.clone(),
        }]);
        i += 1;
    }
    out
}

/// `tokens` with every token's span `span`.
fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respanned(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// The error for an item that is no trait, at its keyword, and the item as it was, but for
/// comms' attributes on an `impl` block's methods, which would each be reported again.
fn not_a_trait(input: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Impl(mut imp)) => {
            let error = syn::Error::new(
                imp.impl_token.span,
                "#[service_client] goes on the trait (`pub trait Users { ... }`); its \
                 implementation is a plain `impl Users for UsersImpl`, with no comms attributes",
            )
            .into_compile_error();
            for item in &mut imp.items {
                if let syn::ImplItem::Fn(f) = item {
                    f.attrs.retain(|a| !attr::is_verb(a));
                    for input in &mut f.sig.inputs {
                        if let FnArg::Typed(pt) = input {
                            pt.attrs.retain(|a| !attr::is_arg_attr(a));
                        }
                    }
                }
            }
            quote!(#error #imp)
        }
        // A trait that does not parse (a `;` missing, say): Rust reports the slip, in the
        // trait given back without comms' attributes, which it would otherwise report as
        // unknown, one by one. (A trait alias parses, as no trait.)
        Err(_) if is_trait(&input) => without_our_attributes(input),
        _ => {
            let error = syn::Error::new(
                Span::call_site(),
                "#[service_client] goes on a trait, like `pub trait Users { ... }`",
            )
            .into_compile_error();
            quote!(#error #input)
        }
    }
}

/// Whether an item's tokens are a trait's: `trait` before its body.
fn is_trait(input: &TokenStream) -> bool {
    use proc_macro2::TokenTree;
    input
        .clone()
        .into_iter()
        .take_while(|tt| !matches!(tt, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        .any(|tt| matches!(tt, TokenTree::Ident(ident) if ident == "trait"))
}

/// The tokens with comms' verb and argument attributes made inert, at any depth.
fn without_our_attributes(input: TokenStream) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    let ours = |group: &Group| {
        group.delimiter() == Delimiter::Bracket
            && matches!(
                group.stream().into_iter().next(),
                Some(TokenTree::Ident(name))
                    if attr::VERBS.iter().chain(attr::ARG_ATTRS).any(|ours| name == ours)
            )
    };
    let mut out = Vec::new();
    let mut tokens = input.into_iter().peekable();
    while let Some(tt) = tokens.next() {
        match tt {
            // Made inert where it stands (`#[allow(unused_attributes)]`, its span kept): Rust's
            // report of the slip in what is given back is then the one it made of the item as
            // written, and shown once.
            TokenTree::Punct(p)
                if p.as_char() == '#'
                    && matches!(tokens.peek(), Some(TokenTree::Group(g)) if ours(g)) =>
            {
                out.push(TokenTree::Punct(p));
                if let Some(TokenTree::Group(ours)) = tokens.next() {
                    let mut inert =
                        Group::new(Delimiter::Bracket, quote!(allow(unused_attributes)));
                    inert.set_span(ours.span());
                    out.push(TokenTree::Group(inert));
                }
            }
            TokenTree::Group(g) => {
                let mut stripped = Group::new(g.delimiter(), without_our_attributes(g.stream()));
                stripped.set_span(g.span());
                out.push(TokenTree::Group(stripped));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// The trait with every comms attribute removed, signatures as written (but for argument
/// patterns, which a declaration without a body cannot have: they become `_`).
fn strip(item: &ItemTrait) -> ItemTrait {
    let mut item = item.clone();
    item.attrs
        .retain(|a| !attr::is_async_trait(a) && !attr::is_service_client(a));
    // An `unsafe` trait, reported: not said again by Rust, whose error about the client's
    // impl would suggest an `unsafe` attribute.
    item.unsafety = None;
    for trait_item in &mut item.items {
        // A method with a visibility, reported: without it to Rust.
        if let TraitItem::Verbatim(tokens) = trait_item
            && let Some((_, f)) = ast::with_visibility(tokens)
        {
            *trait_item = TraitItem::Fn(f);
        }
        if let TraitItem::Fn(f) = trait_item {
            // `const`, `unsafe`, `extern` and `...`, reported: not said again by Rust (nor by
            // an `unsafe_code` lint), in the trait or in the client's methods.
            f.sig.constness = None;
            f.sig.safety = syn::Safety::Default;
            f.sig.abi = None;
            f.sig.variadic = None;
            // A misspelt attribute of ours goes too: it is reported once, by the macro.
            f.attrs.retain(|a| {
                !attr::is_verb(a)
                    && attr::misspelt(a, attr::VERBS).is_none()
                    && attr::method_mistake(a).is_none()
                    && !ast::gives_a_verb(a)
            });
            for input in &mut f.sig.inputs {
                // Refused by the macro (`&mut self`, `self`, `self: Arc<Self>`): left as written,
                // so that an implementation written to match (a mock's) is not refused as well;
                // but for a `mut self`'s `mut`, which Rust refuses in a declaration.
                if let FnArg::Receiver(r) = input {
                    r.mutability = None;
                }
                if let FnArg::Typed(pt) = input {
                    // Ours, and any Rust does not allow there (misspelt or foreign ones, which
                    // the macro reports).
                    // A `#[cfg_attr]` giving one of ours, refused, goes with them.
                    pt.attrs.retain(|a| {
                        !attr::is_arg_attr(a)
                            && !attr::is_foreign_arg_attr(a)
                            && (!a.path().is_ident("cfg_attr") || !ast::compiles_out(a))
                    });
                    // What the macro reported, Rust is not left to report again: `mut` goes,
                    // and any other pattern (`ref x`, `(a, b)`) becomes `_`.
                    match &mut *pt.pat {
                        syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                            p.mutability = None;
                        }
                        syn::Pat::Wild(_) => {}
                        pat => *pat = syn::parse_quote!(_),
                    }
                }
            }
        }
    }
    item
}

fn client_ident(item: &ItemTrait) -> syn::Ident {
    format_ident!("{}Client", item.ident)
}

/// The client struct, its inherent impl and its `FromExecutor` impl with the given
/// `ClientDefaults` literal, shared by the full and the fallback expansion.
fn client_struct(item: &ItemTrait, defaults: TokenStream) -> TokenStream {
    let vis = &item.vis;
    let trait_ident = &item.ident;
    let client = client_ident(item);
    let doc = format!(
        "A client for [`{trait_ident}`], generated by `#[comms::service_client]`.\n\n\
         Cheap to clone: clones share the connection pool, the retry budget and the breaker."
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            executor: ::__comms_crate::__private::Executor,
        }

        impl #client {
            /// Builds the client from the attribute's settings and the environment: the secret
            /// from the `secret_env` variable, the base URL from `base_url_env` and the key id
            /// from `key_id_env` when they are set.
            pub fn new() -> ::__comms_crate::__private::Result<Self, ::__comms_crate::__private::Error> {
                Self::builder().build()
            }

            /// A builder that starts from the attribute's settings.
            pub fn builder() -> ::__comms_crate::__private::ClientBuilder<Self> {
                ::__comms_crate::__private::ClientBuilder::new()
            }

            /// The executor every call of this client goes through.
            pub fn executor(&self) -> &::__comms_crate::__private::Executor {
                &self.executor
            }

            /// A view of this client whose calls use `options` (a timeout, a deadline, headers)
            /// over the client's own settings; see `comms::CallOptions`. Cheap: the view shares
            /// the connection pool, the retry budget and the breaker.
            #[must_use = "`with` returns a view to call through; the client itself is unchanged"]
            pub fn with(&self, options: ::__comms_crate::__private::CallOptions) -> Self {
                #client {
                    executor: self.executor.with(options),
                }
            }
        }

        #[automatically_derived]
        impl ::__comms_crate::__private::FromExecutor for #client {
            const DEFAULTS: &'static ::__comms_crate::__private::ClientDefaults = &#defaults;

            fn from_executor(executor: ::__comms_crate::__private::Executor) -> Self {
                #client { executor }
            }
        }
    }
}

fn expand(service: &Service<'_>) -> TokenStream {
    let item = service.item;
    let trait_ident = &item.ident;
    let client = client_ident(item);

    let mut trait_item = sendable(item, true);
    // A method declared again under `#[cfg]`s that can hold with an earlier one's is left out
    // where that one is compiled: only the refusal is said there.
    let unless = valid::unless_declared_before(service);
    let fns = trait_item.items.iter_mut().filter_map(|i| match i {
        TraitItem::Fn(f) => Some(f),
        _ => None,
    });
    for (f, cfgs) in fns.zip(&unless) {
        f.attrs.extend(cfgs.iter().cloned());
    }

    let args = &service.args;
    let lit = |l: &Option<syn::LitStr>| l.as_ref().map(|l| l.value()).unwrap_or_default();
    let (base_url, service_id, secret_env) = (
        lit(&args.base_url),
        lit(&args.service_id),
        lit(&args.secret_env),
    );
    let base_url_env = match &args.base_url_env {
        Some(env) => quote!(::core::option::Option::Some(#env)),
        None => quote!(::core::option::Option::None),
    };
    let key_id_env = match &args.key_id_env {
        Some(env) => quote!(::core::option::Option::Some(#env)),
        None => quote!(::core::option::Option::None),
    };
    let signing = if args.legacy {
        quote!(::__comms_crate::__private::Signing::Legacy)
    } else {
        quote!(::__comms_crate::__private::Signing::Rfc9421)
    };
    let name = trait_ident.to_string();
    let struct_tokens = client_struct(
        item,
        quote! {
            ::__comms_crate::__private::ClientDefaults {
                name: #name,
                base_url: #base_url,
                base_url_env: #base_url_env,
                service_id: #service_id,
                secret_env: #secret_env,
                key_id_env: #key_id_env,
                signing: #signing,
            }
        },
    );
    let methods = service.methods.iter().zip(&unless).map(|(method, cfgs)| {
        let method = method_impl(method);
        quote!(#(#cfgs)* #method)
    });
    #[cfg(feature = "server")]
    let server = match args.server {
        true => crate::server::expand(service),
        false => TokenStream::new(),
    };
    #[cfg(not(feature = "server"))]
    let server = match args.server {
        true => server_feature_off(item),
        false => TokenStream::new(),
    };

    let twice = valid::twice_under_cfgs(service);

    quote! {
        #trait_item

        #twice

        #struct_tokens

        // A trait, or a type in its signatures, may be `#[deprecated]`: its own client is no
        // use of it.
        #[automatically_derived]
        #[allow(deprecated)]
        impl #trait_ident for #client {
            #(#methods)*
        }

        #server
    }
}

fn method_impl(method: &Method<'_>) -> TokenStream {
    let mut sig = method.item.sig.clone();
    for input in &mut sig.inputs {
        if let FnArg::Typed(pt) = input {
            pt.attrs.retain(|a| !attr::is_arg_attr(a));
        }
    }
    // A plain `fn` returning the executor's own future (decoded on completion): the call is
    // built when the method is called, and no `async` layer wraps the executor's state.
    let ty = method.output.ty;
    let output = future_output(ty);
    sig.asyncness = None;
    sig.output = syn::parse_quote_spanned! {ty.span()=>
        -> impl ::__comms_crate::__private::Future<Output = #output> + ::__comms_crate::__private::Send
    };
    // A return type named in the user's scope must be what it stands for: said once, at it.
    let output_check = output_checks(ty);
    let call = syn::Ident::new("__call", Span::mixed_site());
    let item = syn::Ident::new("__item", Span::mixed_site());
    let route = &method.route;
    let route_text = route.value();
    let find = |name: &str| {
        method
            .args
            .iter()
            .find(|a| ast::unraw(a.ident) == name)
            .expect("route parameters are matched to arguments by validation")
    };

    // The path, built in the call: static text merged into literals, parameters encoded one
    // by one by `Call::segment` and `Call::trailing`, which keep a bad value as the call's
    // error.
    let mut path_stmts = Vec::new();
    let mut pending = String::new();
    let flush = |pending: &mut String, stmts: &mut Vec<TokenStream>| {
        if !pending.is_empty() {
            let text = std::mem::take(pending);
            stmts.push(quote!(#call = ::__comms_crate::__private::literal(#call, #text);));
        }
    };
    let template = method.template.as_ref().expect("validated");
    for segment in &template.segments {
        match segment {
            Segment::Static(range) => {
                pending.push('/');
                pending.push_str(&route_text[range.clone()]);
            }
            Segment::Param { name } | Segment::Trailing { name } => {
                flush(&mut pending, &mut path_stmts);
                let arg = find(&route_text[name.clone()]);
                let value = checked(arg, "path_param");
                let push = if matches!(segment, Segment::Trailing { .. }) {
                    quote!(trailing)
                } else {
                    quote!(segment)
                };
                path_stmts.push(quote!(#call = #call.#push(#value);));
            }
        }
    }
    if template.trailing_slash {
        pending.push('/');
    }
    flush(&mut pending, &mut path_stmts);

    let mut call_stmts = Vec::new();
    for arg in &method.args {
        let ident = arg.ident;
        match &arg.kind {
            ArgKind::Path => {}
            ArgKind::Query { name, shape } => {
                call_stmts.push(each(arg, *shape, &item, |value| {
                    let value = checked_call(arg, *shape, "query_param", value);
                    quote!(#call = #call.query(#name, #value);)
                }));
            }
            ArgKind::QueryFlatten => {
                let value = quote_spanned!(arg.ty.span()=> &#ident);
                let plain = method.args.iter().filter_map(|a| match &a.kind {
                    ArgKind::Query { name, .. } => Some(name),
                    _ => None,
                });
                call_stmts.push(quote_spanned! {arg.ty.span()=>
                    #call = ::__comms_crate::__private::query_flatten(#call, #value, &[#(#plain),*]);
                });
            }
            ArgKind::Header { name, optional } => {
                let shape = if *optional {
                    Shape::Optional
                } else {
                    Shape::Scalar
                };
                call_stmts.push(each(arg, shape, &item, |value| {
                    let value = checked_call(arg, shape, "header_param", value);
                    quote!(#call = #call.header(#name, #value);)
                }));
            }
            ArgKind::Body { .. } => {
                let value = quote_spanned!(arg.ty.span()=> &#ident);
                call_stmts.push(quote_spanned!(arg.ty.span()=>
                    #call = ::__comms_crate::__private::json_body(#call, #value);
                ));
            }
            ArgKind::RawBody { .. } => {
                // By value: an owned `Vec<u8>`, `String` or `Bytes` becomes the body uncopied.
                let mut value = ident.clone();
                value.set_span(value.span().located_at(arg.ty.span()));
                call_stmts.push(quote_spanned!(arg.ty.span()=>
                    #call = ::__comms_crate::__private::raw_body(#call, #value);
                ));
            }
            ArgKind::Form { .. } => {
                let value = quote_spanned!(arg.ty.span()=> &#ident);
                call_stmts.push(quote_spanned!(arg.ty.span()=>
                    #call = ::__comms_crate::__private::form_body(#call, #value);
                ));
            }
            ArgKind::Multipart { .. } => {
                let value = checked(arg, "multipart_param");
                call_stmts.push(quote!(#call = #call.multipart(#value);));
            }
        }
    }
    if method.idempotent.is_some() {
        call_stmts.push(quote!(#call = #call.idempotent(true);));
    }
    if let Some(ms) = method.timeout_ms {
        call_stmts.push(
            quote!(#call = #call.timeout(::__comms_crate::__private::Duration::from_millis(#ms));),
        );
    }
    let verb = format_ident!("{}", method.verb.to_string().to_uppercase());
    // Named with the success type, so that a type that cannot be decoded is reported there.
    let ok = method.output.ok;
    let decode = match method.output.kind {
        OutputKind::Unit | OutputKind::OptionalUnit => {
            quote!(::__comms_crate::__private::decode_unit)
        }
        OutputKind::Raw => quote!(::__comms_crate::__private::decode_response),
        OutputKind::ValueUnit => quote!(::__comms_crate::__private::decode_value_unit),
        OutputKind::Value => {
            let inner = ast::generic_arg(ok).expect("a ResponseValue has its type");
            quote_spanned!(inner.span()=> ::__comms_crate::__private::decode_value::<#inner>)
        }
        OutputKind::Bytes => quote!(::__comms_crate::__private::decode_byte_stream),
        OutputKind::JsonLines => {
            let item = ast::generic_arg(ok).expect("a JsonLines has its item type");
            quote_spanned!(item.span()=> ::__comms_crate::__private::decode_json_lines::<#item>)
        }
        OutputKind::Json | OutputKind::Optional => {
            let decoded = match method.output.kind {
                OutputKind::Optional => ast::generic_arg(ok).expect("an Option has its type"),
                _ => ok,
            };
            quote_spanned!(decoded.span()=> ::__comms_crate::__private::decode_json::<#decoded>)
        }
    };
    let (decoded, execute) = match method.output.kind {
        OutputKind::Optional | OutputKind::OptionalUnit => (
            quote!(::__comms_crate::__private::decoded_optional),
            quote!(execute),
        ),
        kind if kind.is_stream() => (
            quote!(::__comms_crate::__private::decoded),
            quote!(execute_streaming),
        ),
        _ => (quote!(::__comms_crate::__private::decoded), quote!(execute)),
    };
    let capacity = route_text.len() + 16;
    // A method returning `()` ignores its success's body, however long.
    let ignoring_body = match method.output.kind {
        OutputKind::Unit | OutputKind::OptionalUnit | OutputKind::ValueUnit => {
            quote!(#call = ::__comms_crate::__private::ignoring_body(#call);)
        }
        _ => quote!(),
    };
    let attrs = method
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("allow"));

    quote! {
        #(#attrs)*
        #sig {
            #[allow(unused_mut)]
            let mut #call = ::__comms_crate::__private::Call::new(
                ::__comms_crate::__private::Method::#verb,
                ::std::string::String::with_capacity(#capacity),
            )
            .route(#route);
            #ignoring_body
            #output_check
            #(#path_stmts)*
            #(#call_stmts)*
            #decoded(self.executor.#execute(#call), #decode)
        }
    }
}

/// `&arg`, passed through a check function whose unmet bound is reported at the argument's type
/// (`Display` for path values, `comms::Multipart` for a `#[multipart]` body).
fn checked(arg: &Arg<'_>, check: &str) -> TokenStream {
    checked_call(arg, Shape::Scalar, check, borrowed_at_type(arg))
}

/// `&arg`, the argument named where its type is written (its hygiene unchanged): an unmet
/// bound's note ("required by a bound introduced by this call") then points at the type, not
/// at the whole attribute or the argument's name.
fn borrowed_at_type(arg: &Arg<'_>) -> TokenStream {
    let mut ident = arg.ident.clone();
    ident.set_span(ident.span().located_at(arg.ty.span()));
    quote_spanned!(arg.ty.span()=> &#ident)
}

/// `value` (one of the argument's values) passed through the check function `check`, for the
/// type the argument's type writes for it (the item's, for an `Option` or a list): the type is
/// given to the check as written, so that an unmet bound is reported at all of it, not at its
/// first token nor at the attribute. (A type holding an `impl Trait`, which a client-only trait
/// may take, cannot be written there: the check then finds it, reported at its first token.)
fn checked_call(arg: &Arg<'_>, shape: Shape, check: &str, value: TokenStream) -> TokenStream {
    let ty = match shape {
        Shape::Scalar => arg.ty,
        Shape::Optional | Shape::Repeated => ast::item_type(arg.ty).unwrap_or(arg.ty),
    };
    let check = format_ident!("{}", check, span = ty.span());
    match ast::opaque_within(ty) {
        None => quote_spanned!(ty.span()=> ::__comms_crate::__private::#check::<#ty>(#value)),
        Some(_) => quote_spanned!(ty.span()=> ::__comms_crate::__private::#check(#value)),
    }
}

/// Statements applying `apply` to the argument's value, or to each of its values.
fn each(
    arg: &Arg<'_>,
    shape: Shape,
    item: &syn::Ident,
    apply: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let ident = arg.ident;
    // Each item is named where the argument's type is written, so that an item type that
    // cannot be sent is reported there rather than at the attribute (or at the argument's
    // name); its hygiene is unchanged.
    let mut here = item.clone();
    here.set_span(item.span().located_at(arg.ty.span()));
    match shape {
        Shape::Scalar => apply(borrowed_at_type(arg)),
        Shape::Optional => {
            let body = apply(quote_spanned!(arg.ty.span()=> #here));
            quote!(if let ::core::option::Option::Some(#item) = &#ident { #body })
        }
        Shape::Repeated => {
            let body = apply(quote_spanned!(arg.ty.span()=> #here));
            quote!(for #item in #ident.iter() { #body })
        }
    }
}

/// The trait as users see it: attributes stripped, `async fn` turned into
/// `fn -> impl Future + Send` so that generic callers can spawn the futures; with `canonical`,
/// their outputs as `future_output` declares them.
fn sendable(item: &ItemTrait, canonical: bool) -> ItemTrait {
    let mut trait_item = strip(item);
    for ti in &mut trait_item.items {
        if let TraitItem::Fn(f) = ti
            && let syn::ReturnType::Type(_, ty) = &f.sig.output
        {
            let mut output = match canonical {
                true => future_output(ty).into_owned(),
                false => (**ty).clone(),
            };
            // An `impl Trait` or `_` in it, reported, is `()` to Rust, which refuses one within
            // the future's output and could not infer it in the client's unreachable method.
            syn::visit_mut::VisitMut::visit_type_mut(&mut Opaque, &mut output);
            f.sig.asyncness = None;
            f.sig.output = syn::parse_quote_spanned! {ty.span()=>
                -> impl ::__comms_crate::__private::Future<Output = #output> + ::__comms_crate::__private::Send
            };
            // A default body is an error reported already; without it, nothing more is.
            if f.default.take().is_some() {
                f.semi_token = Some(Default::default());
            }
        }
    }
    trait_item
}

/// Turns every `impl Trait` and `_` within a type into `()`.
struct Opaque;

impl syn::visit_mut::VisitMut for Opaque {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(_) | Type::Infer(_) = ty {
            *ty = syn::parse_quote_spanned!(ty.span()=> ());
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// The output of a method's future: its declared return type, or the type it must stand for,
/// `Result<T, comms::Error>`, when what it names is the user's scope's to say: an alias written
/// `Result<T>`, or an error other than `comms::Error` written out (a bare `Error`, which may be
/// another crate's, or `comms::Error` imported under another name). The
/// trait and the client declare that type, so that a return type standing for another is
/// reported once, where it is written (`__private::comms_result`), and not again wherever
/// the trait is used.
///
/// A success type written as a bare `Response` is declared `comms::Response` likewise, and
/// checked where it is written (`__private::comms_response`): an `axum` or `http` `Response`
/// in scope is another type.
fn future_output(ty: &Type) -> Cow<'_, Type> {
    match scoped(ty) {
        (_, Some(_)) => Cow::Owned(syn::parse_quote_spanned! {ty.span()=>
            ::core::result::Result<::__comms_crate::Response, ::__comms_crate::Error>
        }),
        (Some(ok), None) => Cow::Owned(syn::parse_quote_spanned! {ty.span()=>
            ::core::result::Result<#ok, ::__comms_crate::Error>
        }),
        (None, None) => Cow::Borrowed(ty),
    }
}

/// The checks of a return type whose names the user's scope says (see [`future_output`]):
/// that it is `Result<T, comms::Error>`, and a bare `Response` `comms::Response`.
fn output_checks(ty: &Type) -> TokenStream {
    let (result_ok, response) = scoped(ty);
    let mut checks = TokenStream::new();
    if result_ok.is_some() {
        checks.extend(
            quote_spanned! {ty.span()=> ::__comms_crate::__private::comms_result::<#ty>();},
        );
    }
    if let Some(response) = response {
        checks.extend(
            quote_spanned! {response.span()=> ::__comms_crate::__private::comms_response::<#response>();},
        );
    }
    checks
}

/// What of a return type the user's scope names: its success type when the `Result` is an
/// alias or its error other than `comms::Error` written out, and the success type when it is a
/// bare `Response`.
fn scoped(ty: &Type) -> (Option<&Type>, Option<&Type>) {
    let result_ok = ast::aliased_ok(ty).or_else(|| ast::scoped_error_ok(ty));
    let response = result_ok
        .or_else(|| ast::generic_arg(ty))
        .filter(|ok| ast::is_bare(ok, "Response"));
    (result_ok, response)
}

/// What is emitted next to the errors: the trait as it would be, and a client whose methods
/// are never reached, so that one mistake does not cascade into errors at every use site (a
/// caller spawning a method's future still finds it `Send`; a method under `#[cfg]` is still
/// under it).
fn fallback(item: &ItemTrait) -> TokenStream {
    // The return types as written: with no client method to check them (and so to use the
    // names they import), the trait's own are left as they are.
    let mut stripped = sendable(item, false);
    // A method declared twice is reported as that; its second declaration goes, so that the
    // compiler does not report it again, as a duplicate definition and a missing item.
    // Under `#[cfg]`s that differ, both stay: at most one of them is compiled.
    let mut seen = std::collections::HashSet::new();
    stripped.items.retain(|i| match i {
        TraitItem::Fn(f) => seen.insert((f.sig.ident.to_string(), ast::cfgs(&f.attrs))),
        // Anything else (a macro, a constant, a type), reported, goes: what a macro would
        // expand to (comms' attributes among them) is not reported again, and the client
        // still implements the trait, so that code calling its methods is not failed too
        // (code naming the item is, as the item is gone).
        _ => false,
    });
    let trait_ident = &item.ident;
    let client = client_ident(item);
    // Never used: the build fails on the errors emitted beside it.
    let struct_tokens = client_struct(
        item,
        quote! {
            ::__comms_crate::__private::ClientDefaults {
                name: "", base_url: "", base_url_env: ::core::option::Option::None,
                service_id: "", secret_env: "", key_id_env: ::core::option::Option::None,
                signing: ::__comms_crate::__private::Signing::Rfc9421,
            }
        },
    );
    let trait_impl = if item.generics.params.is_empty() {
        let methods = stripped.items.iter().filter_map(|i| match i {
            TraitItem::Fn(f) => {
                let sig = &f.sig;
                let cfgs = ast::cfg_attrs(&f.attrs);
                // An `async fn`, or one declared returning nothing (refused), has no future
                // to return.
                let body =
                    if sig.asyncness.is_some() || matches!(sig.output, syn::ReturnType::Default) {
                        quote!(::core::unreachable!())
                    } else {
                        quote!(async move { ::core::unreachable!() })
                    };
                Some(quote!(#(#cfgs)* #[allow(unused_variables)] #sig { #body }))
            }
            _ => None,
        });
        quote! {
            #[automatically_derived]
            #[allow(deprecated)]
            impl #trait_ident for #client { #(#methods)* }
        }
    } else {
        TokenStream::new()
    };
    // A return type named in the user's scope is still checked, so that its mistake is
    // reported in the same build as the others.
    // (Not for a method with generics, refused already, whose names the check could not see.)
    let checks = item.items.iter().filter_map(|i| match i {
        TraitItem::Fn(f) if f.sig.generics.params.is_empty() => match &f.sig.output {
            syn::ReturnType::Type(_, ty) => {
                let cfgs = ast::cfg_attrs(&f.attrs);
                let mut ty = (**ty).clone();
                syn::visit_mut::VisitMut::visit_type_mut(&mut Opaque, &mut ty);
                let checks = output_checks(&ty);
                (!checks.is_empty()).then(|| quote!(#(#cfgs)* { #checks }))
            }
            syn::ReturnType::Default => None,
        },
        _ => None,
    });
    quote! {
        #stripped
        #struct_tokens
        #trait_impl
        const _: () = {
            #[allow(dead_code)]
            fn output_checks() { #(#checks)* }
        };
    }
}

/// With the `server` feature off, a stand-in for `<Trait>Server` whose `new` fails to compile
/// saying that the feature is needed, where the missing type would be an unknown name (E0433)
/// and nothing more. It is glob-imported from a module of its own, so that a type of the user's
/// of that name, in the trait's module, shadows it without a conflict. Its other methods take
/// anything, and `into_router` returns what it is taken as, so that a builder chain after
/// `new`, or the router's use, adds no error of its own.
#[cfg(not(feature = "server"))]
fn server_feature_off(item: &ItemTrait) -> TokenStream {
    let vis = &item.vis;
    let server = format_ident!("{}Server", item.ident);
    let module = format_ident!("__comms_{}_server_feature_off", item.ident);
    let setters = [
        "verifier",
        "idempotency_store",
        "max_body_bytes",
        "body_timeout",
    ]
    .map(|name| {
        let name = format_ident!("{}", name);
        quote!(pub fn #name<__T>(self, _: __T) -> Self { self })
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, dead_code)]
        mod #module {
            pub struct #server<__S = ()>(::core::marker::PhantomData<__S>);

            #[automatically_derived]
            impl<__S> #server<__S> {
                pub fn new(service: __S) -> Self
                where
                    __S: ::__comms_crate::__private::ServerFeatureOff,
                {
                    match ::__comms_crate::__private::ServerFeatureOff::never(service) {}
                }
                #(#setters)*
                pub fn unverified(self) -> Self { self }
                // Whatever the caller takes a router as (an `axum::Router` written out, an
                // argument of `nest`), so that no "expected `Router`" follows the error above;
                // where nothing says which, the compiler leaves the ambiguity unreported beside
                // that error. Never run: `new` does not compile.
                pub fn into_router<__R>(self) -> __R { ::core::unreachable!() }
            }
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #module::*;
    }
}

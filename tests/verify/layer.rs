//! The axum layer: a client round trip, and a head refused before its body is read, with the
//! body then read under a size and a time limit.

use super::*;

async fn whoami(Extension(caller): Extension<Caller>) -> String {
    caller.service_id().to_owned()
}

async fn echo(Extension(caller): Extension<Caller>, body: String) -> String {
    format!("{}:{body}", caller.service_id())
}

#[tokio::test]
async fn a_client_round_trips_through_the_layer() {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .layer(VerifyLayer::new(verifier()).max_body_bytes(1024));
    let url = serve(app).await;
    let client = exec(&url);
    let me = client
        .execute(Call::get("/whoami").query("x", "a b"))
        .await
        .unwrap();
    assert_eq!(me.text().unwrap(), "billing");
    let echoed = client
        .execute(Call::post("/echo").json(&"hi"))
        .await
        .unwrap();
    assert_eq!(echoed.text().unwrap(), "billing:\"hi\"");

    // Wrong secret: 401 with a generic JSON message, typed on the client side.
    let intruder = comms_tests::plain_executor(&url, "billing", "wrong");
    let err = intruder.execute(Call::get("/whoami")).await.unwrap_err();
    match err {
        Error::Unauthorized(e) => assert_eq!(e.message(), Some("unauthorized")),
        other => panic!("{other}"),
    }

    // Unsigned requests are refused too.
    let plain = reqwest::Client::new()
        .get(format!("{url}/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert_eq!(plain.headers()["content-type"], "application/json");
    // A 401 names the scheme to authenticate with (RFC 9110 §15.5.2), and no more.
    assert_eq!(plain.headers()["www-authenticate"], "Signature");

    // Oversized bodies: 413, by declared length or by counting a chunked body.
    let err = client
        .execute(Call::post("/echo").json(&"x".repeat(4096)))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(413), "{err}");
    // A signed head whose chunked body outgrows the limit: 413 once it is counted.
    let chunks: [&[u8]; 2] = [&[b'x'; 800], &[b'y'; 800]];
    let head = signed_head(&url, "/echo", &chunks.concat(), None);
    let status = raw_request(&url, &head, &chunks, true).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

/// A handler behind the layer can ask its `Caller` which headers the signature covers: every
/// header the call set, not one added on the way, and none under a legacy signature.
#[tokio::test]
async fn a_handler_is_told_which_headers_the_signature_covers() {
    async fn covered(Extension(caller): Extension<Caller>) -> String {
        let names = ["X-Tenant", "x-request-id", "content-digest", "@method"];
        let covered: Vec<&str> = names.into_iter().filter(|n| caller.covers(n)).collect();
        covered.join(",")
    }
    let app = Router::new()
        .route("/covered", get(covered))
        .layer(VerifyLayer::new(verifier().accept_legacy(true)));
    let url = serve(app).await;
    let call = || Call::get("/covered").header("X-Tenant", "acme");
    let answer = exec(&url).execute(call()).await.unwrap();
    assert_eq!(answer.text().unwrap(), "X-Tenant,content-digest");
    let legacy = comms_tests::plain_builder(&url, "billing", SECRET)
        .signing(comms::Signing::Legacy)
        .build()
        .unwrap();
    let answer = legacy.execute(call()).await.unwrap();
    assert_eq!(answer.text().unwrap(), "");

    // A header added to a signed request on its way is not covered.
    let mut r = genuine().await;
    r.headers
        .insert("x-tenant", HeaderValue::from_static("victim"));
    let caller = check(&verifier(), &r).await.unwrap();
    assert!(!caller.covers("x-tenant"));
    assert!(caller.covers("X-Request-Id") && caller.covers("idempotency-key"));
    // A caller is who it is, whatever its request's signature covered.
    let other = check(&verifier(), &genuine().await).await.unwrap();
    assert_eq!(caller, other);
}

/// A POST head to `path` signed as `billing`, with the `Content-Digest` of `body` and, if
/// given, a `Content-Length`.
/// On a nested router the layer sees the path with its prefix stripped; it checks the one the
/// caller signed, the whole path, which axum keeps.
#[tokio::test]
async fn a_layer_on_a_nested_router_checks_the_whole_path() {
    let inner = Router::new()
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .layer(VerifyLayer::new(verifier()));
    let url = serve(Router::new().nest("/api", inner)).await;
    let me = exec(&url).execute(Call::get("/api/whoami")).await.unwrap();
    assert_eq!(me.text().unwrap(), "billing");
    // A head signed for the stripped path, sent to the whole one: refused (checked against
    // the stripped path, it would be served).
    let mut head = signed_head(&url, "/echo", b"", Some(0));
    head.uri = Uri::from_static("/api/echo");
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    // Signed for the whole path, the same request is served.
    let mut head = signed_head(&url, "/api/echo", b"", Some(0));
    head.uri = Uri::from_static("/api/echo");
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

fn signed_head(url: &str, path: &str, body: &[u8], length: Option<u64>) -> Recorded {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signed_head_at(url, path, body, length, created)
}

/// A head signed as [`signed_head`] does, `created` at the given Unix second.
fn signed_head_at(
    url: &str,
    path: &str,
    body: &[u8],
    length: Option<u64>,
    created: u64,
) -> Recorded {
    let addr = url.trim_start_matches("http://");
    let mut head = Recorded::head(Method::POST, path, addr, body);
    if let Some(length) = length {
        head.headers.insert("content-length", length.into());
    }
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nonce = format!("{created:x}{:016x}", NEXT.fetch_add(1, Ordering::SeqCst));
    head.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        &params(created, "billing", &nonce),
        SECRET,
    );
    head
}

/// Writes `head` and then `chunks` (chunk-encoded, or as they are) over a plain TCP stream,
/// and returns the response's status line. With no chunks, nothing follows the head.
async fn raw_request(url: &str, head: &Recorded, chunks: &[&[u8]], chunked: bool) -> String {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = if chunked {
        let mut head = head.clone();
        head.headers
            .insert("transfer-encoding", HeaderValue::from_static("chunked"));
        head_bytes(&head)
    } else {
        head_bytes(head)
    };
    for chunk in chunks {
        if chunked {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        }
        request.extend_from_slice(chunk);
        if chunked {
            request.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        request.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&request).await.unwrap();
    status_line(&mut stream).await
}

/// The status line of the response `stream` receives (read from its first 1,024 bytes).
async fn status_line(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut response = vec![0u8; 1024];
    let n = stream.read(&mut response).await.unwrap();
    String::from_utf8_lossy(&response[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A handler that counts the requests that reach it.
fn counting_app(reached: Arc<AtomicUsize>, layer: VerifyLayer) -> Router {
    Router::new()
        .route(
            "/echo",
            post(move |body: String| async move {
                reached.fetch_add(1, Ordering::SeqCst);
                body
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn an_unsigned_head_is_refused_before_its_body_is_read() {
    let reached = Arc::new(AtomicUsize::new(0));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(verifier()))).await;
    // A head announcing a 1 GB body, which never comes: the 401 comes at once, without
    // waiting for a byte of it (the read would otherwise wait out the 10 s body timeout).
    let mut head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    head.headers.remove("signature");
    let status = tokio::time::timeout(Duration::from_secs(5), raw_request(&url, &head, &[], false))
        .await
        .expect("answered without the body");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // Signed with the wrong secret, likewise.
    let mut head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    let input = head.header("signature-input").unwrap().to_owned();
    let member = &input[input.find(')').unwrap() + 1..];
    head.sign_as(
        "comms",
        &["@method", "@authority", "@path", "@query", "content-digest"],
        member,
        "not-the-secret",
    );
    let status = tokio::time::timeout(Duration::from_secs(5), raw_request(&url, &head, &[], false))
        .await
        .expect("answered without the body");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_signed_body_is_read_under_a_size_and_a_time_limit() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = VerifyLayer::new(verifier())
        .max_body_bytes(1024)
        .body_timeout(Duration::from_millis(300));
    let url = serve(counting_app(reached.clone(), layer)).await;

    // A signed head declaring more than the limit: 413 without reading.
    let head = signed_head(&url, "/echo", b"", Some(1_000_000_000));
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // A signed head whose body never arrives: 408 after the body timeout.
    let body = b"hello";
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let started = std::time::Instant::now();
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The same head with its body: accepted, and then refused as a replay.
    let status = raw_request(&url, &head, &[body], false).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let status = raw_request(&url, &head, &[body], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    // A replayed head is refused at once, its body not waited for: a 401, where waiting for
    // the body that never comes would end in a 408.
    let status = raw_request(&url, &head, &[], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");

    // A body that does not match the signed digest: 401, and its nonce is not spent.
    let head = signed_head(&url, "/echo", b"12345", Some(5));
    let status = raw_request(&url, &head, &[b"54321"], false).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let status = raw_request(&url, &head, &[b"12345"], false).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 2);
}

/// Writes `head`, then `body` after `delay`, and returns the response's status line.
async fn request_with_late_body(
    url: &str,
    head: &Recorded,
    body: &[u8],
    delay: Duration,
) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(&head_bytes(head)).await.unwrap();
    tokio::time::sleep(delay).await;
    stream.write_all(body).await.unwrap();
    status_line(&mut stream).await
}

/// The first of a request's copies: `head` sent from a task of its own, its `body` 500 ms
/// after it, given 200 ms to take its turn before this returns. The task gives the status line.
async fn first_copy(
    url: &str,
    head: &Recorded,
    body: &'static [u8],
) -> tokio::task::JoinHandle<String> {
    let first = tokio::spawn({
        let (url, head) = (url.to_owned(), head.clone());
        async move { request_with_late_body(&url, &head, body, Duration::from_millis(500)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    first
}

/// Copies of one signed head sent at once take turns: while the first has its body read, a
/// copy waits, its body unread, and is refused as a replay once the first is admitted; when
/// the first is refused (its body never came), the copy is admitted in its place. Each copy
/// had its body read before, and the first to finish was served.
#[tokio::test]
async fn copies_of_one_signed_head_take_turns_and_one_has_its_body_read() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = VerifyLayer::new(verifier()).body_timeout(Duration::from_secs(1));
    let url = serve(counting_app(reached.clone(), layer)).await;
    let body = b"hello";

    // The first copy's body follows its head by 500 ms; a whole copy is sent 200 ms in.
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let first = first_copy(&url, &head, body).await;
    let copy = raw_request(&url, &head, &[body], false).await;
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(copy.starts_with("HTTP/1.1 401"), "{copy}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    // The first copy's body never comes: 408 at the body timeout, and the copy, which waited
    // for it, is admitted then.
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let started = std::time::Instant::now();
    let first = tokio::spawn({
        let (url, head) = (url.clone(), head.clone());
        async move { raw_request(&url, &head, &[], false).await }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let copy = raw_request(&url, &head, &[body], false).await;
    let waited = started.elapsed();
    assert!(copy.starts_with("HTTP/1.1 200"), "{copy}");
    assert!(
        waited >= Duration::from_secs(1),
        "answered after {waited:?}"
    );
    assert!(first.await.unwrap().starts_with("HTTP/1.1 408"));
    assert_eq!(reached.load(Ordering::SeqCst), 2);
}

/// A verifier's clone given a store of its own takes turns of its own. Behind a gate of the
/// original (each gate recording nonces in its own store), the request the front gate admitted
/// is admitted behind it too, though a copy of it waited at the front and was refused there:
/// sharing the front's turns, the gate behind found the nonce marked spent by the front.
#[tokio::test]
async fn a_clone_with_a_store_of_its_own_behind_the_original_admits_what_it_admitted() {
    let reached = Arc::new(AtomicUsize::new(0));
    let front = verifier();
    let behind = front
        .clone()
        .nonce_store(comms::verify::MemoryNonceStore::default());
    let timeout = Duration::from_secs(1);
    let app = counting_app(
        reached.clone(),
        VerifyLayer::new(behind).body_timeout(timeout),
    )
    .layer(VerifyLayer::new(front).body_timeout(timeout));
    let url = serve(app).await;
    let body = b"hello";
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let first = first_copy(&url, &head, body).await;
    let copy = raw_request(&url, &head, &[body], false).await;
    assert!(copy.starts_with("HTTP/1.1 401"), "{copy}");
    let first = first.await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

/// Copies stalled on purpose cannot make a request wait for each in turn: it waits its body
/// timeout at most, then gets a 503 with `Retry-After`.
#[tokio::test]
async fn a_wait_behind_stalled_copies_ends_at_the_body_timeout() {
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = VerifyLayer::new(verifier()).body_timeout(Duration::from_millis(800));
    let url = serve(counting_app(reached.clone(), layer)).await;
    let body = b"hello";
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    // Two copies whose bodies never come, 200 ms apart: the second holds the turn from the
    // first's 408 (800 ms) to its own (1,600 ms).
    let stalled: Vec<_> = (0..2)
        .map(|i| {
            let (url, head) = (url.clone(), head.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200 * i)).await;
                raw_request(&url, &head, &[], false).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = head_bytes(&head);
        request.extend_from_slice(body);
        stream.write_all(&request).await.unwrap();
        let mut answer = vec![0u8; 1024];
        let n = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_lowercase();
        assert!(answer.starts_with("http/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1"), "{answer}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "answered after {waited:?}"
    );
    for copy in stalled {
        assert!(copy.await.unwrap().starts_with("HTTP/1.1 408"));
    }
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

/// Under a store that does not look nonces up (as the Redis one), a copy that waited while
/// the first was admitted is refused at its head all the same: it need not send its body.
#[tokio::test]
async fn a_copy_that_waited_is_refused_at_its_head_whatever_the_store() {
    let reached = Arc::new(AtomicUsize::new(0));
    let store = super::store::Shared::default();
    let layer = VerifyLayer::new(verifier().nonce_store(store.clone()))
        .body_timeout(Duration::from_secs(5));
    let url = serve(counting_app(reached.clone(), layer)).await;
    let body = b"hello";
    let head = signed_head(&url, "/echo", body, Some(body.len() as u64));
    let first = first_copy(&url, &head, body).await;
    // The copy's head alone: were its body waited for, it would end at the body timeout.
    let started = std::time::Instant::now();
    let copy = raw_request(&url, &head, &[], false).await;
    assert!(copy.starts_with("HTTP/1.1 401"), "{copy}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(first.await.unwrap().starts_with("HTTP/1.1 200"));
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    // The store was asked once, by the first.
    assert_eq!(store.calls.load(Ordering::SeqCst), 1);
}

/// The skew window is looked at again once the body is in: a head that came in the last
/// second of its window, and whose body came after the window closed, is refused. Its nonce
/// store need not remember a nonce past the window (the Redis store lets it expire), so
/// copies of such a request would otherwise each find it new.
#[tokio::test]
async fn a_body_that_ends_after_the_skew_window_is_refused() {
    let reached = Arc::new(AtomicUsize::new(0));
    let v = verifier().max_skew(Duration::from_secs(1));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(v))).await;
    // Just past the start of a second, signed one second before it: the heads are inside
    // the window (1 s of skew), which closes at the end of this second.
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let to_next = Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
    tokio::time::sleep(to_next + Duration::from_millis(20)).await;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let body = b"100";
    // A request whose body follows at once is in time.
    let prompt = signed_head_at(&url, "/echo", body, Some(3), created);
    let late = signed_head_at(&url, "/echo", body, Some(3), created);
    let copies: Vec<_> = (0..3)
        .map(|_| {
            let (url, late) = (url.clone(), late.clone());
            tokio::spawn(async move {
                request_with_late_body(&url, &late, body, Duration::from_millis(2500)).await
            })
        })
        .collect();
    let status = request_with_late_body(&url, &prompt, body, Duration::ZERO).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for copy in copies {
        let status = copy.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    }
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_chunked_body_needs_a_digest_only_when_it_is_not_empty() {
    let reached = Arc::new(AtomicUsize::new(0));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(verifier()))).await;
    // Signed without `content-digest`, as a request without a body is.
    let undigested = || {
        let mut head = signed_head(&url, "/echo", b"", None);
        head.headers.remove("content-digest");
        let input = head.header("signature-input").unwrap().to_owned();
        let member = &input[input.find(')').unwrap() + 1..];
        head.sign_as(
            "comms",
            &["@method", "@authority", "@path", "@query"],
            member,
            SECRET,
        );
        head
    };
    // A chunked body that turns out empty: there is nothing to digest.
    let status = raw_request(&url, &undigested(), &[], true).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // One that is not: refused once read.
    let status = raw_request(&url, &undigested(), &[b"unsigned"], true).await;
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_chunked_bodys_trailers_do_not_stand_in_for_its_signed_head() {
    let reached = Arc::new(AtomicUsize::new(0));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(verifier()))).await;
    // The trailer section of a chunked body comes after the signature was checked, from the
    // same sender or anything on the way: a `Content-Digest` there is not the digest that
    // was signed.
    let forged = comms::signing::content_digest(b"hellx");
    let chunked = |head: &Recorded, chunk: &[u8]| {
        let mut head = head.clone();
        head.headers
            .insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let mut bytes = head_bytes(&head);
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(format!("\r\n0\r\ncontent-digest: {forged}\r\n\r\n").as_bytes());
        bytes
    };
    // The body signed, the trailer's digest of another: the signed digest is the one checked.
    let head = signed_head(&url, "/echo", b"hello", None);
    let (answer, _) = exchange(&url, &chunked(&head, b"hello"), 1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The body the trailer's digest is of: refused, however the trailer vouches for it.
    let head = signed_head(&url, "/echo", b"hello", None);
    let (answer, _) = exchange(&url, &chunked(&head, b"hellx"), 1).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

/// Writes `bytes` on a fresh connection to `url` and reads what comes back: `responses`
/// status lines, then whether the server closes the connection (at once, as it does after
/// saying so: within a second). Gives what was read, and whether the connection closed.
async fn exchange(url: &str, bytes: &[u8], responses: usize) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let answered = |read: &[u8]| String::from_utf8_lossy(read).matches("HTTP/1.1 ").count();
    while answered(&read) < responses {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&read).into_owned(), true),
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer in 10 s: {}", String::from_utf8_lossy(&read)),
        }
    }
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&read).into_owned(), closed)
}

/// The head of `head` as HTTP/1.1 bytes.
fn head_bytes(head: &Recorded) -> Vec<u8> {
    let mut bytes = format!("{} {} HTTP/1.1\r\n", head.method, head.uri).into_bytes();
    for (name, value) in &head.headers {
        bytes.extend_from_slice(format!("{name}: {}\r\n", value.to_str().unwrap()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

#[tokio::test]
async fn a_refusal_before_the_body_is_read_says_the_connection_closes() {
    let reached = Arc::new(AtomicUsize::new(0));
    let url = serve(counting_app(reached.clone(), VerifyLayer::new(verifier()))).await;

    // A wrongly signed head whose 5-byte body has not come yet: the 401 says the connection
    // closes, and it does, so the client does not send its next request on a connection the
    // server will drop unannounced once it cannot drain the body.
    let mut head = signed_head(&url, "/echo", b"hello", Some(5));
    head.headers.remove("signature");
    let (answer, closed) = exchange(&url, &head_bytes(&head), 1).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(closed, "{answer}");

    // Likewise a replay, refused before its body is read. Its first sending is served.
    let head = signed_head(&url, "/echo", b"hello", Some(5));
    let mut first = head_bytes(&head);
    first.extend_from_slice(b"hello");
    let (answer, _) = exchange(&url, &first, 1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    let (answer, closed) = exchange(&url, &head_bytes(&head), 1).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("connection: close\r\n") && closed,
        "{answer}"
    );

    // A refused request without a body leaves the connection open: a second request on it is
    // answered too.
    let mut twice = b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
    twice.extend_from_slice(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n");
    let (answer, closed) = exchange(&url, &twice, 2).await;
    assert_eq!(answer.matches("HTTP/1.1 401").count(), 2, "{answer}");
    assert!(!answer.contains("connection: close") && !closed, "{answer}");

    // So does a refusal once the body was read whole: a body that does not match its digest.
    let head = signed_head(&url, "/echo", b"12345", Some(5));
    let mut both = head_bytes(&head);
    both.extend_from_slice(b"54321");
    both.extend_from_slice(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n");
    let (answer, closed) = exchange(&url, &both, 2).await;
    assert_eq!(answer.matches("HTTP/1.1 401").count(), 2, "{answer}");
    assert!(!answer.contains("connection: close") && !closed, "{answer}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

/// A signed head may declare any length under the layer's limit, and send two bytes: the room
/// set aside for the body is not the declared length (64 GiB here, which failing to allocate
/// would abort the process) but grows with what arrives.
#[tokio::test]
async fn a_huge_declared_length_is_not_set_aside_before_it_arrives() {
    use tokio::io::AsyncWriteExt;

    let reached = Arc::new(AtomicUsize::new(0));
    let layer = VerifyLayer::new(verifier())
        .max_body_bytes(64 << 30)
        .body_timeout(Duration::from_millis(300));
    let url = serve(counting_app(reached.clone(), layer)).await;
    let head = signed_head(&url, "/echo", b"ab", Some(64 << 30));
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut request = head_bytes(&head);
    request.push(b'a');
    stream.write_all(&request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b"b").await.unwrap();
    // The rest never comes: the body's time limit ends the request.
    let status = status_line(&mut stream).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

/// A limit in front of the layer (tower-http's `RequestBodyLimitLayer` wraps the body in
/// `http_body_util::Limited`) cuts a chunked body short with an error of its own: the layer
/// answers 413, as it does a declared length over its own limit, not 400.
#[tokio::test]
async fn a_body_cut_short_by_a_limit_in_front_is_413() {
    let reached = Arc::new(AtomicUsize::new(0));
    let limited = axum::middleware::map_request(|request: axum::extract::Request| async move {
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, 16)))
    });
    let app = counting_app(reached.clone(), VerifyLayer::new(verifier())).layer(limited);
    let url = serve(app).await;
    let body = [b'x'; 100];
    let head = signed_head(&url, "/echo", &body, None);
    let status = raw_request(&url, &head, &[&body[..]], true).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

//! Adversarial round trips through a generated client and a generated server of one trait,
//! over loopback, signatures verified: every value the client accepts must reach the method as
//! it was given, and every answer must reach the caller as the method gave it.

use std::sync::OnceLock;

use comms::verify::Verifier;
use comms::{Error, service_client};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const SECRET: &str = "round-trip-secret";

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sort {
    NameAsc,
    #[serde(rename = "date+desc")]
    DateDesc,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Flat {
    pub s: String,
    pub o: Option<String>,
    #[serde(default)]
    pub v: Vec<String>,
    pub u: u64,
    pub i: i64,
    pub b: bool,
    pub sort: Sort,
    pub maybe_sort: Option<Sort>,
}

/// Flattened inside a flattened struct: serde hands the server its fields as text, so they
/// are fields read from text (see the README).
#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Inner {
    pub page: String,
    pub on: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Outer {
    pub q: String,
    #[serde(flatten)]
    pub inner: Inner,
}

/// What the plain query arguments arrive as: `s`, `o`, `v` and `r`.
type Query = (String, Option<String>, Vec<String>, Option<String>);

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_ROUND_TRIP_SECRET"
)]
pub trait Trip {
    #[get("/seg/<a>/<b>")]
    async fn seg(&self, a: &str, b: &str) -> Result<(String, String), Error>;

    #[get("/files/<path..>")]
    async fn files(&self, path: &str) -> Result<String, Error>;

    #[get("/q")]
    async fn q(
        &self,
        #[query] s: &str,
        #[query] o: Option<String>,
        #[query] v: Vec<String>,
        #[query(rename = "a b&c=+%;#")] r: Option<String>,
    ) -> Result<Query, Error>;

    #[get("/nums")]
    async fn nums(
        &self,
        #[query] u: u64,
        #[query] i: i64,
        #[query] f: f64,
        #[query] c: char,
    ) -> Result<(u64, i64, u64, char), Error>;

    #[get("/h")]
    async fn h(
        &self,
        #[header("X-A")] a: &str,
        #[header("X-B")] b: Option<String>,
    ) -> Result<(String, Option<String>), Error>;

    #[get("/flat")]
    async fn flat(&self, #[query(flatten)] f: &Flat) -> Result<Flat, Error>;

    #[post("/form")]
    async fn form(&self, #[form] f: &Flat) -> Result<Flat, Error>;

    #[get("/outer")]
    async fn outer(&self, #[query(flatten)] o: &Outer) -> Result<Outer, Error>;

    #[post("/outer")]
    async fn outer_form(&self, #[form] o: &Outer) -> Result<Outer, Error>;

    /// The body's f64 as the server parsed it, as bits.
    #[post("/f64")]
    async fn f64_in(&self, #[body] x: f64) -> Result<String, Error>;

    /// The f64 of these bits, answered as JSON.
    #[get("/f64/<bits>")]
    async fn f64_out(&self, bits: u64) -> Result<f64, Error>;

    #[post("/text")]
    async fn text(&self, #[body] s: &str) -> Result<String, Error>;

    /// The floats of a flattened query struct and of a form, as the server parsed them, as bits.
    #[post("/floats")]
    async fn floats(
        &self,
        #[query(flatten)] q: &Floats,
        #[form] f: &Floats,
    ) -> Result<(Vec<u64>, Vec<u64>), Error>;
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Floats {
    pub x: f64,
    pub y: Option<f64>,
    #[serde(default)]
    pub z: Vec<f64>,
}

fn bits(f: &Floats) -> Vec<u64> {
    let mut out = vec![f.x.to_bits()];
    out.extend(f.y.map(f64::to_bits));
    out.extend(f.z.iter().map(|z| z.to_bits()));
    out
}

#[derive(Clone)]
struct TripImpl;

impl Trip for TripImpl {
    async fn seg(&self, a: &str, b: &str) -> Result<(String, String), Error> {
        Ok((a.into(), b.into()))
    }
    async fn files(&self, path: &str) -> Result<String, Error> {
        Ok(path.into())
    }
    async fn q(
        &self,
        s: &str,
        o: Option<String>,
        v: Vec<String>,
        r: Option<String>,
    ) -> Result<Query, Error> {
        Ok((s.into(), o, v, r))
    }
    async fn nums(&self, u: u64, i: i64, f: f64, c: char) -> Result<(u64, i64, u64, char), Error> {
        Ok((u, i, f.to_bits(), c))
    }
    async fn h(&self, a: &str, b: Option<String>) -> Result<(String, Option<String>), Error> {
        Ok((a.into(), b))
    }
    async fn flat(&self, f: &Flat) -> Result<Flat, Error> {
        Ok(f.clone())
    }
    async fn form(&self, f: &Flat) -> Result<Flat, Error> {
        Ok(f.clone())
    }
    async fn outer(&self, o: &Outer) -> Result<Outer, Error> {
        Ok(o.clone())
    }
    async fn outer_form(&self, o: &Outer) -> Result<Outer, Error> {
        Ok(o.clone())
    }
    async fn f64_in(&self, x: f64) -> Result<String, Error> {
        Ok(x.to_bits().to_string())
    }
    async fn f64_out(&self, bits: u64) -> Result<f64, Error> {
        Ok(f64::from_bits(bits))
    }
    async fn text(&self, s: &str) -> Result<String, Error> {
        Ok(s.into())
    }
    async fn floats(&self, q: &Floats, f: &Floats) -> Result<(Vec<u64>, Vec<u64>), Error> {
        Ok((bits(q), bits(f)))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn client() -> &'static TripClient {
    static CLIENT: OnceLock<TripClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let url = runtime().block_on(async {
            comms_tests::serve(
                TripServer::new(TripImpl)
                    .verifier(Verifier::new().service("billing", SECRET))
                    .into_router(),
            )
            .await
        });
        let _guard = runtime().enter();
        comms_tests::plain_client(&url, SECRET)
    })
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Strings rich in what tries to break out of a segment, a query pair, a header.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[./%?#+&=; a-z\u{e9}\u{202e}\u{0301}\u{1F600}\u{FEFF}]{0,16}",
        Just(String::new()),
        Just(" ".to_owned()),
        Just("%2F".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("+".to_owned()),
    ]
}

fn sort() -> impl Strategy<Value = Sort> {
    prop_oneof![Just(Sort::NameAsc), Just(Sort::DateDesc)]
}

fn flat() -> impl Strategy<Value = Flat> {
    (
        hostile(),
        proptest::option::of(hostile()),
        proptest::collection::vec(hostile(), 0..3),
        any::<u64>(),
        any::<i64>(),
        any::<bool>(),
        sort(),
        proptest::option::of(sort()),
    )
        .prop_map(|(s, o, v, u, i, b, sort, maybe_sort)| Flat {
            s,
            o,
            v,
            u,
            i,
            b,
            sort,
            maybe_sort,
        })
}

/// What the client refused, unsent, is fine; what it sent must come back as it was.
fn sent<T: std::fmt::Debug>(result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(Error::Encode { .. }) => None,
        Err(e) => panic!("sent but not served: {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn path_segments_round_trip(a in hostile(), b in hostile()) {
        if let Some(back) = sent(run(client().seg(&a, &b))) {
            prop_assert_eq!(back, (a, b));
        }
    }

    #[test]
    fn trailing_segments_round_trip(path in hostile()) {
        if let Some(back) = sent(run(client().files(&path))) {
            prop_assert_eq!(back, path);
        }
    }

    #[test]
    fn plain_query_values_round_trip(
        s in hostile(),
        o in proptest::option::of(hostile()),
        v in proptest::collection::vec(hostile(), 0..3),
        r in proptest::option::of(hostile()),
    ) {
        let back = sent(run(client().q(&s, o.clone(), v.clone(), r.clone())));
        prop_assert_eq!(back, Some((s, o, v, r)));
    }

    #[test]
    fn numbers_round_trip(u in any::<u64>(), i in any::<i64>(), f in any::<f64>(), c in any::<char>()) {
        let back = sent(run(client().nums(u, i, f, c)));
        prop_assert_eq!(back, Some((u, i, f.to_bits(), c)));
    }

    #[test]
    fn header_values_round_trip(a in hostile(), b in proptest::option::of(hostile())) {
        if let Some(back) = sent(run(client().h(&a, b.clone()))) {
            prop_assert_eq!(back, (a, b));
        }
    }

    #[test]
    fn a_flattened_query_struct_round_trips(f in flat()) {
        if let Some(back) = sent(run(client().flat(&f))) {
            prop_assert_eq!(back, f);
        }
    }

    #[test]
    fn a_form_round_trips(f in flat()) {
        if let Some(back) = sent(run(client().form(&f))) {
            prop_assert_eq!(back, f);
        }
    }

    #[test]
    fn a_json_string_body_round_trips(s in hostile()) {
        let back = sent(run(client().text(&s)));
        prop_assert_eq!(back, Some(s));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A JSON body's f64 reaches the method with the same bits (finite values: JSON has no
    /// NaN or infinity).
    #[test]
    fn a_json_f64_body_arrives_with_its_bits(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let back = run(client().f64_in(x)).unwrap();
        prop_assert_eq!(back, x.to_bits().to_string(), "{:e} sent", x);
    }

    /// A JSON f64 answer reaches the caller with the same bits.
    #[test]
    fn a_json_f64_answer_arrives_with_its_bits(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let back = run(client().f64_out(x.to_bits())).unwrap();
        prop_assert_eq!(back.to_bits(), x.to_bits(), "{:e} answered, {:e} received", x, back);
    }
}

#[test]
fn a_struct_with_a_serde_flatten_field_of_text_round_trips_in_the_query_and_as_a_form() {
    for on in [None, Some(String::new()), Some("a b&c=+%".to_owned())] {
        let o = Outer {
            q: "x".into(),
            inner: Inner {
                page: "7".into(),
                on,
            },
        };
        assert_eq!(run(client().outer(&o)).unwrap(), o);
        assert_eq!(run(client().outer_form(&o)).unwrap(), o);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The query and form encodings carry every f64, NaN and the infinities too.
    #[test]
    fn floats_in_a_query_struct_and_a_form_arrive_with_their_bits(
        x in any::<f64>(),
        y in proptest::option::of(prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::NEG_INFINITY), Just(-0.0)]),
        z in proptest::collection::vec(prop_oneof![any::<f64>(), Just(f64::INFINITY), Just(-0.0)], 0..3),
    ) {
        let f = Floats { x, y, z };
        let (q, form) = run(client().floats(&f, &f)).unwrap();
        let canon = |v: Vec<u64>| v.into_iter().map(|b| if f64::from_bits(b).is_nan() { 0x7ff8_0000_0000_0000 } else { b }).collect::<Vec<_>>();
        prop_assert_eq!(canon(q), canon(bits(&f)));
        prop_assert_eq!(canon(form), canon(bits(&f)));
    }
}

/// Long values: served, or refused unsent with an `Error::Encode` past what a request line
/// carries (headers and bodies are served far beyond it; a header's value in ASCII, which a
/// signature base is written in).
#[test]
fn long_values_are_served_or_refused_with_a_clear_error() {
    for len in [1_000usize, 16_000, 70_000] {
        let long = "é".repeat(len / 2);
        let seg = run(client().seg(&long, "b"));
        let q = run(client().q(&long, None, vec![], None));
        let h = run(client().h(&"e".repeat(len), None));
        assert!(matches!(
            run(client().h(&long, None)),
            Err(Error::Encode { .. })
        ));
        let t = run(client().text(&long));
        for (what, r) in [("segment", seg.map(|_| ())), ("query", q.map(|_| ()))] {
            match r {
                Ok(()) => assert!(len < 20_000, "{len} {what}"),
                Err(Error::Encode { .. }) => assert!(len > 20_000, "{len} {what}"),
                Err(e) => panic!("{len} {what}: {e}"),
            }
        }
        h.unwrap();
        t.unwrap();
    }
}

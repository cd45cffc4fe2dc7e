//! A 1 GiB body streamed over loopback, from a generated server to a generated client in this
//! one process, in bounded memory: neither side holds more than a few chunks of it at a time.
//!
//! Alone in its test binary, so that nothing else moves the process's peak resident memory.

use std::time::Instant;

use bytes::Bytes;
use comms::verify::Verifier;
use comms::{ByteStream, Error, service_client};
use comms_tests::serve;

const SECRET: &str = "memory-secret";
const GIB: u64 = 1 << 30;
/// The most the process's peak resident memory may grow by while the body goes through.
const BUDGET: u64 = 32 << 20;

/// The served body is this block, repeated: nothing is allocated for it.
static BLOCK: [u8; 64 * 1024] = [0x5a; 64 * 1024];

#[service_client(
    base_url = "http://127.0.0.1:9",
    service_id = "billing",
    secret_env = "COMMS_TEST_MEMORY_SECRET"
)]
pub trait Blobs {
    #[get("/blobs/<size>")]
    async fn blob(&self, size: u64) -> Result<ByteStream, Error>;
}

#[derive(Clone)]
struct BlobsImpl;

impl Blobs for BlobsImpl {
    async fn blob(&self, size: u64) -> Result<ByteStream, Error> {
        let blocks = size / BLOCK.len() as u64;
        let block = Bytes::from_static(&BLOCK);
        Ok(ByteStream::from_chunks(std::iter::repeat_n(
            block,
            blocks as usize,
        )))
    }
}

/// A `kB` figure of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gib_streams_through_in_bounded_memory() {
    let url = serve(
        BlobsServer::new(BlobsImpl)
            .verifier(Verifier::new().service("billing", SECRET))
            .into_router(),
    )
    .await;
    let client = BlobsClient::builder()
        .base_url(&url)
        .secret(SECRET)
        .build()
        .unwrap();
    // A small call first, so that the pool, the runtime and the server are warm.
    let mut warm = client.blob(BLOCK.len() as u64).await.unwrap();
    while let Some(chunk) = warm.next_chunk().await {
        chunk.unwrap();
    }

    // The peak is reset to the current figure where the kernel allows it (Linux 4.0+).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (rss_before, peak_before) = (status_bytes("VmRSS:"), status_bytes("VmHWM:"));
    let started = Instant::now();
    let mut body = client.blob(GIB).await.unwrap();
    let (mut total, mut chunks, mut largest) = (0u64, 0u64, 0usize);
    while let Some(chunk) = body.next_chunk().await {
        let chunk = chunk.unwrap();
        assert!(
            chunk.first() == Some(&0x5a) && chunk.last() == Some(&0x5a),
            "chunk {chunks} is not the served block's bytes"
        );
        total += chunk.len() as u64;
        chunks += 1;
        largest = largest.max(chunk.len());
    }
    let took = started.elapsed();
    let (rss_after, peak_after) = (status_bytes("VmRSS:"), status_bytes("VmHWM:"));
    // Measured from the larger of the two starting points when the peak could not be reset.
    let start = if reset {
        rss_before
    } else {
        rss_before.max(peak_before)
    };
    let growth = peak_after.saturating_sub(start);
    eprintln!(
        "1 GiB in {took:?} ({:.0} MiB/s), {chunks} chunks (largest {largest} B); VmRSS {} -> {} \
         MiB, VmHWM {} -> {} MiB (peak reset: {reset}); peak growth {:.1} MiB",
        GIB as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        rss_before >> 20,
        rss_after >> 20,
        peak_before >> 20,
        peak_after >> 20,
        growth as f64 / (1 << 20) as f64,
    );
    assert_eq!(total, GIB, "the whole body arrived");
    assert!(
        growth < BUDGET,
        "resident memory grew by {} MiB while 1 GiB streamed through",
        growth >> 20
    );
}

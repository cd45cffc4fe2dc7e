//! Randomness for nonces, idempotency keys, multipart boundaries and jitter, drawn from the
//! operating system.

use crate::Error;

/// 16 bytes from the operating system's CSPRNG, for nonces and idempotency keys.
///
/// Each thread draws 4 KiB at a time and hands them out 16 bytes at a time, so a call costs a
/// copy instead of a system call. Every byte is used once.
pub(crate) fn random_bytes() -> Result<[u8; 16], Error> {
    const POOL: usize = 4096;
    thread_local! {
        static RANDOM: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
            std::cell::RefCell::new((Box::new([0; POOL]), POOL));
    }
    RANDOM.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (pool, used) = &mut *guard;
        if *used + 16 > POOL {
            getrandom::fill(&mut pool[..])
                .map_err(|e| Error::encode(format!("the system random source failed: {e}")))?;
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&pool[*used..*used + 16]);
        // Wipe what was handed out, so the pool never holds a nonce already sent.
        pool[*used..*used + 16].fill(0);
        *used += 16;
        Ok(out)
    })
}

/// A random `u64` from the same pool, for backoff jitter.
pub(crate) fn random_u64() -> Result<u64, Error> {
    let bytes = random_bytes()?;
    Ok(u64::from_le_bytes(
        bytes[..8].try_into().expect("8 of 16 bytes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_never_repeat() {
        let draws: std::collections::HashSet<[u8; 16]> =
            (0..2000).map(|_| random_bytes().unwrap()).collect();
        assert_eq!(draws.len(), 2000, "across several pool refills");
    }
}

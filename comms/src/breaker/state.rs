//! The breaker's state as its one `AtomicU64` holds it.
//!
//! Every transition is one compare-and-swap of this word, and admission on the closed path is
//! one atomic load of it, so what the word holds is read and written here only, through
//! [`Word::unpack`] and [`Word::pack`]: bits 0–1 the state, bits 2–31 the probes left while
//! half-open, bits 32–63 the generation. The time an open breaker reopens lives in an atomic of
//! its own (`Breaker::open_until`): it does not fit beside the rest, and it only matters once
//! the word says open.

/// The most probes the word can count.
pub(super) const MAX_PROBES: u32 = PROBE_MASK as u32;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const STATE_MASK: u64 = 0b11;
const PROBE_SHIFT: u32 = 2;
const PROBE_MASK: u64 = (1 << 30) - 1;
const GEN_SHIFT: u32 = 32;

/// A breaker's state, without the generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Calls flow.
    Closed,
    /// Calls fail fast until `open_until`.
    Open,
    /// `probes` more calls may be let through.
    HalfOpen {
        /// Probes left to hand out (at most [`MAX_PROBES`]).
        probes: u32,
    },
}

/// The whole word: the state and the generation it belongs to. The generation changes with
/// every transition (wrapping after 2^32 of them), so an outcome recorded for a permit issued
/// before the last transition is recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) state: State,
    pub(super) generation: u32,
}

impl Word {
    /// A new breaker's word: closed, generation 0.
    pub(super) const INITIAL: Word = Word {
        state: State::Closed,
        generation: 0,
    };

    /// Reads a word loaded from the breaker.
    #[inline]
    pub(super) fn unpack(word: u64) -> Word {
        let state = match word & STATE_MASK {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen {
                probes: ((word >> PROBE_SHIFT) & PROBE_MASK) as u32,
            },
        };
        Word {
            state,
            generation: (word >> GEN_SHIFT) as u32,
        }
    }

    /// The word to store in the breaker.
    #[inline]
    pub(super) fn pack(self) -> u64 {
        let (state, probes) = match self.state {
            State::Closed => (CLOSED, 0),
            State::Open => (OPEN, 0),
            State::HalfOpen { probes } => (HALF_OPEN, u64::from(probes)),
        };
        state | (probes & PROBE_MASK) << PROBE_SHIFT | u64::from(self.generation) << GEN_SHIFT
    }

    /// `state`, in the generation after this one.
    pub(super) fn next(self, state: State) -> Word {
        Word {
            state,
            generation: self.generation.wrapping_add(1),
        }
    }

    /// This word's generation with another state.
    pub(super) fn with(self, state: State) -> Word {
        Word {
            state,
            generation: self.generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let states = [
            State::Closed,
            State::Open,
            State::HalfOpen { probes: 0 },
            State::HalfOpen { probes: 1 },
            State::HalfOpen { probes: MAX_PROBES },
        ];
        for state in states {
            for generation in [0, 1, 7, u32::MAX - 1, u32::MAX] {
                let word = Word { state, generation };
                assert_eq!(Word::unpack(word.pack()), word, "{word:?}");
            }
        }
    }

    #[test]
    fn the_layout_is_state_probes_generation() {
        assert_eq!(Word::INITIAL.pack(), 0);
        let half_open = Word {
            state: State::HalfOpen { probes: 3 },
            generation: 5,
        };
        assert_eq!(half_open.pack(), 2 | 3 << 2 | 5 << 32);
        let open = Word {
            state: State::Open,
            generation: u32::MAX,
        };
        assert_eq!(open.pack(), 1 | u64::from(u32::MAX) << 32);
    }

    #[test]
    fn the_generation_wraps() {
        let last = Word {
            state: State::Open,
            generation: u32::MAX,
        };
        let next = last.next(State::HalfOpen { probes: 1 });
        assert_eq!(next.generation, 0);
        assert_eq!(Word::unpack(next.pack()), next);
    }
}

//! The breaker's state as its one `AtomicU64` holds it.
//!
//! Every transition is one compare-and-swap of this word, and admission on the closed path is
//! one atomic load of it, so what the word holds is read and written here only, through
//! [`Word::unpack`] and [`Word::pack`]: bits 0–1 the state, bits 2–23 the probes left while
//! half-open, bits 24–31 how many times the half-open period was started afresh, bits 32–63
//! the generation. The time an open breaker reopens lives in an atomic of its own
//! (`Breaker::open_until`): it does not fit beside the rest, and it only matters once the word
//! says open.

/// The most probes the word can count.
pub(super) const MAX_PROBES: u32 = PROBE_MASK as u32;

/// The most restarts of one half-open period the word counts (a `u8`'s); past it, the count
/// stays, and only the probes of the last this many restarts close the breaker late.
#[cfg(test)]
pub(super) const MAX_RESTARTS: u8 = u8::MAX;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;
const STATE_MASK: u64 = 0b11;
const PROBE_SHIFT: u32 = 2;
const PROBE_MASK: u64 = (1 << 22) - 1;
const RESTART_SHIFT: u32 = 24;
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
/// before the last transition is recognised and ignored. While half-open, `restarts` counts
/// the transitions that started the period afresh (overdue probes given up): the period began
/// `restarts` generations ago, so a probe of any generation since still speaks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Word {
    pub(super) state: State,
    pub(super) generation: u32,
    /// Restarts of the half-open period (0 in any other state, and on entering it).
    pub(super) restarts: u8,
}

impl Word {
    /// A new breaker's word: closed, generation 0.
    pub(super) const INITIAL: Word = Word {
        state: State::Closed,
        generation: 0,
        restarts: 0,
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
            restarts: (word >> RESTART_SHIFT) as u8,
        }
    }

    /// The word to store in the breaker.
    #[inline]
    pub(super) fn pack(self) -> u64 {
        let (state, probes, restarts) = match self.state {
            State::Closed => (CLOSED, 0, 0),
            State::Open => (OPEN, 0, 0),
            State::HalfOpen { probes } => (HALF_OPEN, u64::from(probes), self.restarts),
        };
        state
            | (probes & PROBE_MASK) << PROBE_SHIFT
            | u64::from(restarts) << RESTART_SHIFT
            | u64::from(self.generation) << GEN_SHIFT
    }

    /// `state`, in the generation after this one (a new period: no restarts).
    pub(super) fn next(self, state: State) -> Word {
        Word {
            state,
            generation: self.generation.wrapping_add(1),
            restarts: 0,
        }
    }

    /// The half-open period started afresh with `probes`, in the generation after this one.
    pub(super) fn restarted(self, probes: u32) -> Word {
        Word {
            state: State::HalfOpen { probes },
            generation: self.generation.wrapping_add(1),
            restarts: self.restarts.saturating_add(1),
        }
    }

    /// This word's generation with another state.
    pub(super) fn with(self, state: State) -> Word {
        Word { state, ..self }
    }

    /// Whether a probe let through in `generation` belongs to this word's half-open period:
    /// its generation, or one of the restarts since the period began.
    pub(super) fn in_period(self, generation: u32) -> bool {
        matches!(self.state, State::HalfOpen { .. })
            && self.generation.wrapping_sub(generation) <= u32::from(self.restarts)
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
                for restarts in [0, 1, MAX_RESTARTS] {
                    let restarts = if matches!(state, State::HalfOpen { .. }) {
                        restarts
                    } else {
                        0
                    };
                    let word = Word {
                        state,
                        generation,
                        restarts,
                    };
                    assert_eq!(Word::unpack(word.pack()), word, "{word:?}");
                }
            }
        }
    }

    #[test]
    fn the_layout_is_state_probes_restarts_generation() {
        assert_eq!(Word::INITIAL.pack(), 0);
        let half_open = Word {
            state: State::HalfOpen { probes: 3 },
            generation: 5,
            restarts: 2,
        };
        assert_eq!(half_open.pack(), 2 | 3 << 2 | 2 << 24 | 5 << 32);
        let open = Word {
            state: State::Open,
            generation: u32::MAX,
            restarts: 0,
        };
        assert_eq!(open.pack(), 1 | u64::from(u32::MAX) << 32);
    }

    #[test]
    fn the_generation_wraps() {
        let last = Word {
            state: State::Open,
            generation: u32::MAX,
            restarts: 0,
        };
        let next = last.next(State::HalfOpen { probes: 1 });
        assert_eq!(next.generation, 0);
        assert_eq!(Word::unpack(next.pack()), next);
        // A probe of the period's first generation is in it across the wrap.
        let restarted = next.restarted(1);
        assert!(restarted.in_period(u32::MAX.wrapping_add(1)));
        assert!(!restarted.in_period(u32::MAX));
    }

    #[test]
    fn the_word_counts_the_documented_most_probes() {
        assert_eq!(MAX_PROBES, 4_194_303);
    }

    #[test]
    fn a_period_holds_the_generations_of_its_restarts_only() {
        let open = Word {
            state: State::Open,
            generation: 10,
            restarts: 0,
        };
        let first = open.next(State::HalfOpen { probes: 1 });
        assert!(first.in_period(11) && !first.in_period(10) && !first.in_period(12));
        let third = first.restarted(1).restarted(1);
        assert_eq!((third.generation, third.restarts), (13, 2));
        assert!((11..=13).all(|g| third.in_period(g)));
        assert!(!third.in_period(10));
        // Taking a probe keeps the period; closing or opening ends it.
        assert!(third.with(State::HalfOpen { probes: 0 }).in_period(11));
        assert!(!third.next(State::Open).in_period(13));
        // The count stays at its most.
        let mut word = first;
        for _ in 0..300 {
            word = word.restarted(1);
        }
        assert_eq!(word.restarts, MAX_RESTARTS);
    }
}

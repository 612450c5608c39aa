//! The breaker's state word: kind, generation and "open until", packed in one `u64` so every
//! transition is a single compare-and-swap.
//!
//! Layout: `kind` (3 bits) | `generation` (16 bits, wrapping) | `until_ms` (45 bits:
//! milliseconds since the breaker was created, ~1100 years).

pub(crate) const CLOSED: u64 = 0;
pub(crate) const OPEN: u64 = 1;
pub(crate) const HALF_OPEN: u64 = 2;
pub(crate) const FORCED_OPEN: u64 = 3;
pub(crate) const DISABLED: u64 = 4;

const KIND_BITS: u32 = 3;
const GEN_BITS: u32 = 16;
const UNTIL_BITS: u32 = 64 - KIND_BITS - GEN_BITS;
const UNTIL_MASK: u64 = (1 << UNTIL_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;

/// A decoded state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) kind: u64,
    pub(crate) generation: u16,
    pub(crate) until_ms: u64,
}

impl Word {
    pub(crate) const fn decode(raw: u64) -> Self {
        Self {
            kind: raw >> (GEN_BITS + UNTIL_BITS),
            generation: ((raw >> UNTIL_BITS) & GEN_MASK) as u16,
            until_ms: raw & UNTIL_MASK,
        }
    }

    pub(crate) const fn encode(self) -> u64 {
        (self.kind << (GEN_BITS + UNTIL_BITS))
            | ((self.generation as u64) << UNTIL_BITS)
            | (if self.until_ms > UNTIL_MASK {
                UNTIL_MASK
            } else {
                self.until_ms
            })
    }

    /// The next state: `kind`, the following generation, `until_ms`.
    pub(crate) const fn next(self, kind: u64, until_ms: u64) -> Self {
        Self {
            kind,
            generation: self.generation.wrapping_add(1),
            until_ms,
        }
    }
}

/// Half-open probe bookkeeping, packed: `generation` (16) | `started` (16) | `succeeded` (16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probes {
    pub(crate) generation: u16,
    pub(crate) started: u16,
    pub(crate) succeeded: u16,
}

impl Probes {
    pub(crate) const fn decode(raw: u64) -> Self {
        Self {
            generation: (raw >> 32) as u16,
            started: (raw >> 16) as u16,
            succeeded: raw as u16,
        }
    }

    pub(crate) const fn encode(self) -> u64 {
        ((self.generation as u64) << 32) | ((self.started as u64) << 16) | self.succeeded as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for kind in [CLOSED, OPEN, HALF_OPEN, FORCED_OPEN, DISABLED] {
            for generation in [0, 1, u16::MAX] {
                for until_ms in [0, 1, 123_456_789, UNTIL_MASK] {
                    let w = Word {
                        kind,
                        generation,
                        until_ms,
                    };
                    assert_eq!(Word::decode(w.encode()), w);
                }
            }
        }
        let p = Probes {
            generation: 7,
            started: 3,
            succeeded: 2,
        };
        assert_eq!(Probes::decode(p.encode()), p);
    }

    #[test]
    fn generation_wraps() {
        let w = Word {
            kind: OPEN,
            generation: u16::MAX,
            until_ms: 5,
        };
        assert_eq!(w.next(HALF_OPEN, 0).generation, 0);
    }
}

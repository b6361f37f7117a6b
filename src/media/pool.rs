//! The RTP port pool: even RTP ports (RTCP on the odd port above), split
//! into one contiguous range per media shard.
//!
//! The signalling core allocates from it when it writes an SDP (it must
//! know the port before the SDP leaves) and the shard that owns the port
//! binds it. All legs of one call come from one shard, so relaying between
//! them never crosses a thread. Released ports go to the back of their
//! shard's queue: a port is reused as late as possible, so stray packets of
//! a finished call do not reach the next one.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// Ports of one shard.
#[derive(Debug, Clone)]
struct ShardPorts {
    range: RangeInclusive<u16>,
    free: VecDeque<u16>,
    /// Per pair, in range order: allocated.
    used: Vec<bool>,
    in_use: usize,
}

impl ShardPorts {
    fn slot(&self, port: u16) -> usize {
        usize::from((port - *self.range.start()) / 2)
    }
}

/// The pool over all shards.
#[derive(Debug, Clone)]
pub struct PortPool {
    shards: Vec<ShardPorts>,
}

/// Why the pool could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The range has fewer even ports than shards.
    #[error(
        "port range {first}-{last} has {pairs} RTP/RTCP pairs, fewer than the {shards} shards"
    )]
    TooSmall {
        /// First port.
        first: u16,
        /// Last port.
        last: u16,
        /// Even/odd pairs in the range.
        pairs: usize,
        /// Shards asked for.
        shards: usize,
    },
}

impl PortPool {
    /// A pool over `first..=last` (rounded inward to whole even/odd pairs)
    /// split into `shards` contiguous ranges.
    pub fn new(first: u16, last: u16, shards: usize) -> Result<PortPool, PoolError> {
        let shards = shards.max(1);
        let lo = first.saturating_add(first % 2);
        let pairs = if last > lo {
            usize::from(last - lo).div_ceil(2)
        } else {
            0
        };
        // A pair needs its odd port inside the range.
        let pairs = (0..pairs)
            .filter(|i| u32::from(lo) + 2 * (*i as u32) < u32::from(last))
            .count();
        if pairs < shards {
            return Err(PoolError::TooSmall {
                first,
                last,
                pairs,
                shards,
            });
        }
        let per = pairs / shards;
        let mut out = Vec::with_capacity(shards);
        for s in 0..shards {
            let start = s * per;
            let end = if s + 1 == shards { pairs } else { start + per };
            let ports: VecDeque<u16> = (start..end).map(|i| lo + 2 * i as u16).collect();
            let range = ports.front().copied().unwrap_or(lo)..=ports.back().copied().unwrap_or(lo);
            out.push(ShardPorts {
                range,
                used: vec![false; ports.len()],
                free: ports,
                in_use: 0,
            });
        }
        Ok(PortPool { shards: out })
    }

    /// A pool with no ports (every allocation fails: calls get 503).
    pub fn empty() -> PortPool {
        PortPool { shards: Vec::new() }
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The RTP ports shard `shard` owns (even ports; each with port + 1).
    pub fn range(&self, shard: usize) -> Option<RangeInclusive<u16>> {
        self.shards.get(shard).map(|s| s.range.clone())
    }

    /// The shard owning `port` (RTP or RTCP).
    pub fn shard_of(&self, port: u16) -> Option<usize> {
        let even = port & !1;
        self.shards.iter().position(|s| s.range.contains(&even))
    }

    /// The shard with the most free ports that has at least `legs` free,
    /// for a new call.
    pub fn pick_shard(&self, legs: usize) -> Option<usize> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, s)| s.free.len() >= legs)
            .max_by_key(|(i, s)| (s.free.len(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// Take an RTP port from `shard`.
    pub fn alloc(&mut self, shard: usize) -> Option<u16> {
        let s = self.shards.get_mut(shard)?;
        let port = s.free.pop_front()?;
        let slot = s.slot(port);
        s.used[slot] = true;
        s.in_use += 1;
        Some(port)
    }

    /// Return an RTP port. Ports the pool does not own are ignored.
    pub fn release(&mut self, port: u16) {
        if let Some(i) = self.shard_of(port) {
            let s = &mut self.shards[i];
            let slot = s.slot(port & !1);
            if s.used[slot] {
                s.used[slot] = false;
                s.in_use -= 1;
                s.free.push_back(port & !1);
            }
        }
    }

    /// Ports in use over all shards.
    pub fn in_use(&self) -> usize {
        self.shards.iter().map(|s| s.in_use).sum()
    }

    /// Ports free over all shards.
    pub fn free(&self) -> usize {
        self.shards.iter().map(|s| s.free.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_inside_the_range() {
        let pool = PortPool::new(10_001, 10_010, 1).unwrap();
        // 10002/3, 10004/5, 10006/7, 10008/9 (10010 has no 10011).
        assert_eq!(pool.free(), 4);
        assert_eq!(pool.range(0), Some(10_002..=10_008));
    }

    #[test]
    fn shards_split_the_range_and_calls_stay_on_one_shard() {
        let mut pool = PortPool::new(20_000, 20_015, 2).unwrap();
        assert_eq!(pool.range(0), Some(20_000..=20_006));
        assert_eq!(pool.range(1), Some(20_008..=20_014));
        let s = pool.pick_shard(2).unwrap();
        let a = pool.alloc(s).unwrap();
        let b = pool.alloc(s).unwrap();
        assert_eq!(pool.shard_of(a), Some(s));
        assert_eq!(pool.shard_of(b + 1), Some(s));
        // The other shard now has more free ports.
        assert_ne!(pool.pick_shard(2), Some(s));
    }

    #[test]
    fn exhaustion_and_release_reuse_late() {
        let mut pool = PortPool::new(30_000, 30_005, 1).unwrap();
        let a = pool.alloc(0).unwrap();
        let b = pool.alloc(0).unwrap();
        let c = pool.alloc(0).unwrap();
        assert_eq!(pool.alloc(0), None);
        assert_eq!(pool.pick_shard(1), None);
        pool.release(b);
        pool.release(a);
        assert_eq!(pool.in_use(), 1);
        // Released ports come back in release order.
        assert_eq!(pool.alloc(0), Some(b));
        assert_eq!(pool.alloc(0), Some(a));
        pool.release(c);
        pool.release(c); // a double release changes nothing
        assert_eq!(pool.free(), 1);
        assert_eq!(pool.in_use(), 2);
        pool.release(40_000); // not ours
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn too_small_a_range_is_an_error() {
        assert!(PortPool::new(5000, 5001, 2).is_err());
        assert!(PortPool::new(5001, 5001, 1).is_err());
        assert!(PortPool::new(65_534, 65_535, 1).is_ok());
    }
}

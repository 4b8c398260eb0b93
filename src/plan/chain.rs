//! Neurosurgeon's Algorithm 1: on a chain, try every prefix, in one pass.
//!
//! For a chain the only closed head sets are prefixes of the order. The cost of prefix j is
//! maintained incrementally: moving item j to the head swaps its server cost for its phone cost,
//! and the tensors that cross are those produced at or before j (or graph inputs) and read after
//! j, found with each tensor's last reader. O(N + E) for all prefixes.

use super::instance::{Instance, Linear};

/// Whether every item reads something the item before it computes, so that only prefixes are
/// closed (the paper's setting).
pub fn is_chain(inst: &Instance) -> bool {
    let mut reads_previous = vec![false; inst.len()];
    for t in &inst.transfers {
        if let Some(p) = t.producer {
            for &c in &t.consumers {
                if c == p + 1 {
                    reads_previous[c] = true;
                }
            }
        }
    }
    reads_previous.iter().skip(1).all(|&r| r)
}

/// The cost of every prefix: entry j is the head {0..j} (j = 0 all on the server, j = N all on
/// the phone), `None` where it would send a tensor of unknown size.
pub fn prefix_costs(inst: &Instance) -> Vec<Option<Linear>> {
    let n = inst.len();
    // A tensor crosses for the prefixes j with start <= j < end: its producer is in the head
    // (graph inputs from j = 0) and its last reader is not. Difference arrays over j.
    let mut delta = vec![Linear::default(); n + 1];
    let mut unknown = vec![0i64; n + 1];
    for t in &inst.transfers {
        let start = t.producer.map_or(0, |p| p + 1);
        let end = t.consumers.iter().max().map_or(start, |&c| c + 1);
        if end <= start {
            continue;
        }
        match t.cost {
            Some(c) => {
                delta[start] = delta[start] + c;
                delta[end] = delta[end] + c * -1.0;
            }
            None => {
                unknown[start] += 1;
                unknown[end] -= 1;
            }
        }
    }
    // Server cost of the items after j, and whether one of them may not run there.
    let mut suffix = vec![Some(Linear::default()); n + 1];
    for j in (0..n).rev() {
        suffix[j] = suffix[j + 1].zip(inst.cloud[j]).map(|(s, c)| s + c);
    }
    let last_reply = inst.reply_items.iter().max().map(|&i| i + 1);
    let (mut phone, mut crossing, mut open_unknown) = (Linear::default(), Linear::default(), 0);
    let mut out = Vec::with_capacity(n + 1);
    for j in 0..=n {
        crossing = crossing + delta[j];
        open_unknown += unknown[j];
        if j > 0 {
            phone = phone + inst.mobile[j - 1];
        }
        let rtt = match last_reply {
            Some(r) if j < r => inst.rtt,
            _ => Linear::default(),
        };
        out.push(
            suffix[j]
                .filter(|_| open_unknown == 0)
                .map(|server| phone + server + crossing + rtt),
        );
    }
    out
}

/// The best prefix at `x`: its length and cost (the shortest among equals).
pub fn best_prefix(inst: &Instance, x: f64) -> (usize, f64) {
    let mut best = (inst.len(), f64::INFINITY);
    for (j, c) in prefix_costs(inst).into_iter().enumerate() {
        if let Some(c) = c {
            if c.at(x) < best.1 {
                best = (j, c.at(x));
            }
        }
    }
    best
}

//! Exact breakpoints of a parametric choice (Eisner and Severance, 1976).
//!
//! For a fixed cut, latency and energy are lines in x = 1/bandwidth: cost = a + b·x. The best cut
//! as a function of x is the lower envelope of those lines. Given an oracle that returns the best
//! line at any x, the envelope over [lo, hi] is found exactly: solve at both ends; if the same
//! line wins at both, it wins throughout (the envelope is concave, so it lies on or above that
//! line's chord, and being a minimum it lies on or below the line); otherwise intersect the two
//! winners' lines, solve there, and recurse on both sides unless nothing beats them at the
//! crossing, which is then a breakpoint. No sampling grid.

/// A candidate's cost as a line in x: `a + b·x`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Line<Id> {
    pub id: Id,
    pub a: f64,
    pub b: f64,
}

impl<Id> Line<Id> {
    pub fn at(&self, x: f64) -> f64 {
        self.a + self.b * x
    }
}

/// One piece of the envelope: `id` is best for x in [from, to].
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Piece<Id> {
    pub from: f64,
    pub to: f64,
    pub id: Id,
}

/// The lower envelope over [lo, hi] of the lines the oracle chooses from, as ordered pieces.
/// `best(x)` must return a line of minimum cost at x. Ties are resolved by the oracle.
pub fn lower_envelope<Id: Copy + PartialEq>(
    lo: f64,
    hi: f64,
    best: &mut impl FnMut(f64) -> Line<Id>,
) -> Vec<Piece<Id>> {
    let (left, right) = (best(lo), best(hi));
    let mut cuts = vec![(lo, left)];
    split(lo, left, hi, right, best, &mut cuts, 0);
    cuts.push((hi, right));
    // Merge neighbouring equal winners into pieces.
    let mut pieces: Vec<Piece<Id>> = vec![];
    for w in cuts.windows(2) {
        let ((x0, l0), (x1, _)) = (w[0], w[1]);
        match pieces.last_mut() {
            Some(p) if p.id == l0.id => p.to = x1,
            _ => pieces.push(Piece {
                from: x0,
                to: x1,
                id: l0.id,
            }),
        }
    }
    // Drop empty pieces (a breakpoint at an end), unless the range itself is a point.
    if lo < hi {
        pieces.retain(|p| p.to > p.from);
    }
    pieces
}

/// Refine between two points whose winners differ; pushes (x, winner from x on) in order.
fn split<Id: Copy + PartialEq>(
    x0: f64,
    l0: Line<Id>,
    x1: f64,
    l1: Line<Id>,
    best: &mut impl FnMut(f64) -> Line<Id>,
    out: &mut Vec<(f64, Line<Id>)>,
    depth: usize,
) {
    if l0.id == l1.id || depth > 64 {
        return;
    }
    // Where the two winners' lines cross; parallel lines cannot both win at different x.
    let denom = l0.b - l1.b;
    if denom == 0.0 {
        return;
    }
    let xc = ((l1.a - l0.a) / denom).clamp(x0, x1);
    let m = best(xc);
    let tolerance = 1e-9 * (1.0 + m.at(xc).abs());
    if m.id == l0.id || m.id == l1.id || m.at(xc) >= l0.at(xc) - tolerance {
        // Nothing beats the two lines at their crossing: it is a breakpoint.
        out.push((xc, l1));
        return;
    }
    split(x0, l0, xc, m, best, out, depth + 1);
    split(xc, m, x1, l1, best, out, depth + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn brute(lines: &[Line<usize>], x: f64) -> Line<usize> {
        *lines
            .iter()
            .min_by(|p, q| p.at(x).total_cmp(&q.at(x)).then(p.id.cmp(&q.id)))
            .unwrap()
    }

    #[test]
    fn envelope_matches_a_dense_sweep_on_random_lines() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(1..12);
            let lines: Vec<Line<usize>> = (0..n)
                .map(|id| Line {
                    id,
                    a: rng.random_range(0.0..100.0),
                    b: rng.random_range(0.0..50.0),
                })
                .collect();
            let (lo, hi) = (0.001, 10.0);
            let pieces = lower_envelope(lo, hi, &mut |x| brute(&lines, x));
            // Pieces tile [lo, hi] in order, and each piece's line is optimal at its midpoint.
            assert_eq!(pieces.first().unwrap().from, lo);
            assert_eq!(pieces.last().unwrap().to, hi);
            for w in pieces.windows(2) {
                assert!((w[0].to - w[1].from).abs() < 1e-12 && w[0].id != w[1].id);
            }
            for p in &pieces {
                let mid = 0.5 * (p.from + p.to);
                let best = brute(&lines, mid);
                assert!(
                    lines[p.id].at(mid) <= best.at(mid) + 1e-9,
                    "{p:?} not optimal at {mid}"
                );
            }
            // A dense sweep sees no change of winner that the pieces do not have.
            for k in 0..=2000 {
                let x = lo + (hi - lo) * k as f64 / 2000.0;
                let p = pieces.iter().find(|p| p.from <= x && x <= p.to).unwrap();
                assert!(lines[p.id].at(x) <= brute(&lines, x).at(x) + 1e-7, "x={x}");
            }
        }
    }
}

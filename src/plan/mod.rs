//! Stage 5, **plan**: the best cut per network condition.
//!
//! So far: [`breakpoints`], the exact bandwidths where the best choice changes. The network
//! buckets, the chain scan and the DAG min-cut come with the planner issue.

pub mod breakpoints;

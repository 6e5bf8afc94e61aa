//! The one integration-test binary: every end-to-end test of `announce`, as modules of
//! tests/suite/, on the shared helpers of tests/support/. One binary links the library once
//! and lets the test harness schedule every test together.
//!
//! Run one area with a filter: `cargo test --test main suite::sms::`.

mod suite;
mod support;

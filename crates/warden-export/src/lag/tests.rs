#![allow(clippy::unwrap_used, reason = "test code")]
use super::*;

#[test]
fn lag_over_the_limit_is_announced_once_then_recovered_at_most_once_a_minute() {
    let t0 = Instant::now();
    let mut w = LagWatch::new("copy", 100, Duration::from_secs(300));
    assert!(w.check(t0, 0, 100).is_none(), "at the limit is not over it");
    let r = w.check(t0, 0, 101).unwrap();
    assert_eq!(r.kind, RecordKind::ExportLagging);
    assert_eq!(r.payload["lag"], 101);
    assert_eq!(r.payload["sink"], "copy");
    assert!(
        w.check(t0 + Duration::from_secs(1), 0, 5000).is_none(),
        "once"
    );
    // Back under the limit within the minute: not yet.
    assert!(w.check(t0 + Duration::from_secs(30), 4990, 5000).is_none());
    let r = w.check(t0 + Duration::from_secs(61), 4990, 5000).unwrap();
    assert_eq!(r.kind, RecordKind::ExportRecovered);
    assert!(w.check(t0 + Duration::from_secs(200), 5000, 5000).is_none());
}

#[test]
fn failing_too_long_is_lagging_even_with_a_small_lag() {
    let t0 = Instant::now();
    let mut w = LagWatch::new("h", 100_000, Duration::from_secs(300));
    w.failed(t0, "the sink answered 503");
    assert!(w.check(t0 + Duration::from_secs(299), 10, 12).is_none());
    w.failed(
        t0 + Duration::from_secs(299),
        "the sink could not be reached",
    );
    let r = w.check(t0 + Duration::from_secs(301), 10, 12).unwrap();
    assert_eq!(r.kind, RecordKind::ExportLagging);
    assert_eq!(r.payload["error"], "the sink could not be reached");
    w.succeeded();
    let r = w.check(t0 + Duration::from_secs(400), 12, 12).unwrap();
    assert_eq!(r.kind, RecordKind::ExportRecovered);
}

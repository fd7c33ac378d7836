use super::*;

#[test]
fn backoff_doubles_within_the_cap_with_full_jitter() {
    let p = RetryPolicy::default();
    let f = Failure::transient("x");
    for attempt in 1..40 {
        let bound = p
            .base
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(p.cap);
        assert!(p.delay(attempt, &f) <= bound, "{attempt}");
    }
    let delays: std::collections::HashSet<_> = (0..20).map(|_| p.delay(10, &f)).collect();
    assert!(delays.len() > 1, "jittered");
}

#[test]
fn retry_after_is_honoured_within_its_cap_and_refusals_wait_long() {
    let p = RetryPolicy::default();
    let mut f = Failure::transient("429");
    f.retry_after = parse_retry_after("7");
    assert_eq!(p.delay(1, &f), Duration::from_secs(7));
    f.retry_after = parse_retry_after("99999999");
    assert_eq!(p.delay(1, &f), p.max_retry_after);
    for bad in [
        "",
        "-1",
        "1.5",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "99999999999",
    ] {
        assert_eq!(parse_retry_after(bad), None, "{bad}");
    }
    let refused = Failure {
        refused: true,
        ..Failure::transient("400")
    };
    let d = p.delay(1, &refused);
    assert!(d >= p.slow / 2 && d <= p.slow, "{d:?}");
}

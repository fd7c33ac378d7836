use proptest::prelude::*;
use serde_json::json;

use super::*;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn a_valid_traceparent_is_kept_with_its_ids() {
    let t = TraceContext::parse(Some(TP), None).unwrap();
    assert_eq!(t.traceparent(), TP);
    assert_eq!(t.tracestate(), None);
    assert_eq!(
        t.trace_id(),
        [
            0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80,
            0x31, 0x9c
        ]
    );
    assert_eq!(
        t.parent_id(),
        [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
    );
    assert_eq!(t.flags(), 1);
    assert_eq!(t.to_json(), json!({ "traceparent": TP }));
}

#[test]
fn malformed_traceparents_are_ignored() {
    let bad = [
        "",
        "00",
        // all-zero trace id, all-zero parent id
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        // uppercase hex, wrong hex, wrong version, wrong separators, extra data
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
        " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n",
    ];
    for b in bad {
        assert_eq!(TraceContext::parse(Some(b), Some("a=b")), None, "{b:?}");
    }
    let long = format!("{TP}{}", "0".repeat(10_000));
    assert_eq!(TraceContext::parse(Some(&long), None), None);
    assert_eq!(TraceContext::parse(None, Some("a=b")), None);
}

#[test]
fn a_tracestate_is_kept_only_when_valid_and_bounded() {
    let keep = |s: &str| {
        TraceContext::parse(Some(TP), Some(s))
            .unwrap()
            .tracestate()
            .map(str::to_owned)
    };
    assert_eq!(
        keep("congo=t61rcWkgMzE"),
        Some("congo=t61rcWkgMzE".to_owned())
    );
    assert_eq!(
        keep("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"),
        Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE".to_owned())
    );
    assert!(keep("tenant1@vendor=x").is_some());
    for bad in [
        "",
        "novalue",
        "=x",
        "Upper=x",
        "a=b=c",
        "a=x\u{7f}",
        "a=x y=z",
        "a=\u{e9}",
    ] {
        assert_eq!(keep(bad), None, "{bad:?}");
    }
    let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert_eq!(keep(&members.join(",")), None, "more than 32 members");
    let big = format!("a={}", "x".repeat(600));
    assert_eq!(keep(&big), None, "over 512 bytes");
    let t = TraceContext::parse(Some(TP), Some("a=b")).unwrap();
    assert_eq!(
        t.to_json(),
        json!({ "traceparent": TP, "tracestate": "a=b" })
    );
}

#[test]
fn meta_values_that_are_not_strings_are_ignored() {
    let meta = |v: serde_json::Value| v.as_object().cloned().unwrap();
    assert!(TraceContext::from_meta(&meta(json!({ "traceparent": TP }))).is_some());
    for v in [
        json!(1),
        json!(null),
        json!([TP]),
        json!({ "v": TP }),
        json!(true),
    ] {
        assert_eq!(
            TraceContext::from_meta(&meta(json!({ "traceparent": v }))),
            None
        );
    }
    let with_bad_state =
        TraceContext::from_meta(&meta(json!({ "traceparent": TP, "tracestate": 5 })));
    assert_eq!(with_bad_state.unwrap().tracestate(), None);
}

#[test]
fn header_values_that_are_not_utf8_or_repeated_are_ignored() {
    let one = |v: &'static [u8]| vec![v];
    let none: Vec<&[u8]> = Vec::new();
    assert!(TraceContext::from_headers(one(TP.as_bytes()), none.clone()).is_some());
    assert_eq!(
        TraceContext::from_headers(one(b"\xff\xfe"), none.clone()),
        None
    );
    assert_eq!(
        TraceContext::from_headers(vec![TP.as_bytes(), TP.as_bytes()], none.clone()),
        None
    );
    let t = TraceContext::from_headers(one(TP.as_bytes()), one(b"a=\xff")).unwrap();
    assert_eq!(t.tracestate(), None);
    let t = TraceContext::from_headers(one(TP.as_bytes()), vec![&b"a=b"[..], b"c=d"]).unwrap();
    assert_eq!(t.tracestate(), None, "a repeated tracestate is dropped");
}

#[test]
fn a_recorded_context_reads_back() {
    let t = TraceContext::parse(Some(TP), Some("a=b")).unwrap();
    let mut payload = json!({ "tool": "fs.read" });
    t.record_in(&mut payload);
    assert_eq!(TraceContext::from_payload(&payload), Some(t));
    assert_eq!(TraceContext::from_payload(&json!({ "trace": "x" })), None);
}

proptest! {
    #[test]
    fn any_string_parses_without_panicking_and_what_is_kept_is_canonical(
        parent in ".{0,80}",
        state in ".{0,600}",
    ) {
        if let Some(t) = TraceContext::parse(Some(&parent), Some(&state)) {
            prop_assert_eq!(t.traceparent().len(), 55);
            prop_assert!(t.trace_id() != [0u8; 16]);
            prop_assert!(t.parent_id() != [0u8; 8]);
            if let Some(s) = t.tracestate() {
                prop_assert!(s.len() <= MAX_TRACESTATE_BYTES);
            }
        }
    }

    #[test]
    fn every_well_formed_traceparent_round_trips(
        trace in proptest::array::uniform16(any::<u8>()),
        parent in proptest::array::uniform8(any::<u8>()),
        flags in any::<u8>(),
    ) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let tp = format!("00-{}-{}-{:02x}", hex(&trace), hex(&parent), flags);
        let parsed = TraceContext::parse(Some(&tp), None);
        let valid = trace != [0u8; 16] && parent != [0u8; 8];
        prop_assert_eq!(parsed.is_some(), valid);
        if let Some(t) = parsed {
            prop_assert_eq!(t.trace_id(), trace);
            prop_assert_eq!(t.parent_id(), parent);
            prop_assert_eq!(t.flags(), flags);
        }
    }
}

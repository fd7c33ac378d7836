//! Provenance on the decision path: `trace` over a session that read 1 MiB of untrusted
//! content, and indexing that content.
//!
//! `cargo bench -p warden-provenance --bench trace -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance};

/// About 1 MiB of mail-like content: addresses, URLs, IBANs, amounts and prose.
fn mail_mib() -> String {
    let mut s = String::new();
    let mut i = 0u64;
    while s.len() < 1024 * 1024 {
        s.push_str(&format!(
            "From: sender{i}@vendor{m}.example\nSubject: invoice {i}\n\
             Dear customer, please find invoice {i} for EUR {a}.{c:02} attached. Pay to \
             GB{c:02} BUKB 2020 {i:04} 5555 55 before the end of the month, or visit \
             https://portal{m}.example/pay?inv={i} to settle it online. Kind regards, the \
             accounts team of vendor {m}.\n\n",
            m = i % 97,
            a = 100 + i % 9000,
            c = i % 100,
        ));
        i += 1;
    }
    s
}

fn bench(c: &mut Criterion) {
    let label: Arc<str> = Arc::from("untrusted_mail");
    let content = mail_mib();
    let build = || {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(
            "Pay the March bill of ACME Energy, 1240.50 EUR, to DE89 3704 0044 0532 0130 00.",
            TrustedSource::Task,
        )
        .ok();
        p.add_untrusted(
            &content,
            Origin {
                seq: 1,
                labels: vec![label.clone()],
            },
        );
        p
    };
    let p = build();
    eprintln!(
        "indexed {} bytes: {} keys, ~{} bytes of memory, complete: {}",
        content.len(),
        p.keys(),
        p.memory_bytes(),
        p.is_complete()
    );
    let body = "Hello team, here is the summary you asked for. ".repeat(40);
    c.bench_function("trace/short_value_hit", |b| {
        b.iter(|| black_box(p.trace(black_box("sender4242@vendor71.example"))))
    });
    c.bench_function("trace/short_value_miss", |b| {
        b.iter(|| black_box(p.trace(black_box("alice@partner.example"))))
    });
    c.bench_function("trace/stated_iban", |b| {
        b.iter(|| black_box(p.trace(black_box("DE89370400440532013000"))))
    });
    c.bench_function("trace/2KiB_body", |b| {
        b.iter(|| black_box(p.trace(black_box(&body))))
    });
    let mut g = c.benchmark_group("index");
    g.sample_size(10);
    g.bench_function("add_untrusted/1MiB", |b| b.iter(|| black_box(build())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

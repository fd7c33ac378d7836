//! Criterion benchmark of argument provenance: indexing 1 MiB of realistic untrusted content
//! (mail-like text with addresses, URLs, IBANs, amounts and account numbers), then tracing a
//! short value (found and not found) and a 2 KiB value (an e-mail body) against that index.
//!
//! Run: `cargo bench -p warden-provenance --bench trace -- --warm-up-time 1 --measurement-time 3`.
//! The figures are in `docs/provenance.md`.

#![allow(clippy::panic, reason = "bench code")]
#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance};

/// A small deterministic generator (xorshift), so that every run indexes the same content.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(xs.len() as u64)).unwrap_or(0);
        xs.get(i).copied().unwrap_or("")
    }
}

const WORDS: &[&str] = &[
    "the",
    "invoice",
    "payment",
    "please",
    "attached",
    "account",
    "transfer",
    "meeting",
    "tomorrow",
    "quarterly",
    "report",
    "review",
    "confirm",
    "details",
    "regards",
    "thanks",
    "supplier",
    "contract",
    "deadline",
    "budget",
    "approved",
    "pending",
    "update",
    "schedule",
    "customer",
    "order",
    "shipment",
    "delivery",
    "reference",
    "balance",
    "statement",
    "urgent",
    "team",
    "project",
    "Monday",
    "Friday",
    "office",
    "call",
    "and",
    "to",
    "for",
    "with",
    "of",
    "in",
    "on",
    "is",
    "we",
    "you",
    "our",
    "your",
    "this",
    "that",
    "will",
    "can",
    "Müller",
    "Größe",
    "café",
    "naïve",
];
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "oscar", "peggy", "trent", "victor", "walter",
];
const DOMAINS: &[&str] = &[
    "corp.example",
    "supplier.example",
    "bank.example",
    "mail.example",
    "evil.example",
    "news.example",
    "shop.example",
    "cloud.example",
];

/// One mail-like message of about `target` bytes.
fn message(rng: &mut Rng, n: u64, target: usize) -> String {
    let mut m = String::with_capacity(target + 256);
    let from = rng.pick(NAMES);
    let dom = rng.pick(DOMAINS);
    let _ = write!(
        m,
        "From: {from}.{n}@{dom}\nTo: {}@{}\nSubject: Invoice INV-{n:06} for order {}\n\n",
        rng.pick(NAMES),
        rng.pick(DOMAINS),
        rng.below(1_000_000)
    );
    while m.len() < target {
        match rng.below(24) {
            0 => {
                let _ = write!(
                    m,
                    "Please transfer EUR {}.{:02} to IBAN DE{:02} {:04} {:04} {:04} {:04} {:02}. ",
                    rng.below(100_000),
                    rng.below(100),
                    rng.below(100),
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(100)
                );
            }
            1 => {
                let _ = write!(
                    m,
                    "See https://{}/docs/{}?id={} for details. ",
                    rng.pick(DOMAINS),
                    rng.pick(WORDS).to_lowercase(),
                    rng.below(1_000_000)
                );
            }
            2 => {
                let _ = write!(
                    m,
                    "Reply to {}.{}@{} or call +49 {} {}. ",
                    rng.pick(NAMES),
                    rng.below(10_000),
                    rng.pick(DOMAINS),
                    rng.below(1_000),
                    rng.below(10_000_000)
                );
            }
            3 => {
                let _ = write!(
                    m,
                    "Account {:010}, card 4111-{:04}-{:04}-{:04}. ",
                    rng.next() % 10_000_000_000,
                    rng.below(10_000),
                    rng.below(10_000),
                    rng.below(10_000)
                );
            }
            4 => m.push_str(".\n"),
            _ => {
                m.push_str(rng.pick(WORDS));
                m.push(' ');
            }
        }
    }
    m
}

/// About 1 MiB of untrusted content in messages of about 2 KiB, with one planted IBAN.
fn corpus() -> Vec<String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < 1 << 20 {
        let mut m = message(&mut rng, n, 2_048);
        if n == 100 {
            m.push_str("New bank details: GB33 BUKB 2020 1555 5555 55, thanks.\n");
        }
        total += m.len();
        out.push(m);
        n += 1;
    }
    out
}

fn labels() -> Vec<Arc<str>> {
    vec![Arc::from("untrusted_mail")]
}

fn index(corpus: &[String]) -> SessionProvenance {
    let mut p = SessionProvenance::new(Limits::default());
    if p
        .add_trusted(
            "Pay the March invoice of the supplier to DE89 3704 0044 0532 0130 00 and tell alice@corp.example.",
            TrustedSource::Task,
        )
        .is_err()
    {
        panic!("the task fits");
    }
    for (seq, m) in (1u64..).zip(corpus) {
        p.add_untrusted(
            m,
            Origin {
                seq,
                labels: labels(),
            },
        );
    }
    p
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    let bytes: usize = corpus.iter().map(String::len).sum();
    let p = index(&corpus);
    assert!(p.is_complete(), "1 MiB fits the default limits");
    let hit = p.trace("GB33 BUKB 2020 1555 5555 55");
    assert!(hit.from_any(&labels()), "the planted IBAN is traced");
    assert!(!p.trace("zz99 nowhere at all").from_any(&labels()));
    let body = corpus.get(7).cloned().unwrap_or_default();
    eprintln!(
        "indexed {bytes} bytes: {} keys, memory_bytes {} ({} bytes per MiB indexed)",
        p.keys(),
        p.memory_bytes(),
        p.memory_bytes() * (1 << 20) / bytes.max(1)
    );

    let mut g = c.benchmark_group("trace");
    g.bench_function("short_hit", |b| {
        b.iter(|| black_box(p.trace(black_box("GB33 BUKB 2020 1555 5555 55"))));
    });
    g.bench_function("short_miss", |b| {
        b.iter(|| black_box(p.trace(black_box("bob@elsewhere.example"))));
    });
    g.bench_function("short_stated", |b| {
        b.iter(|| black_box(p.trace(black_box("DE89 3704 0044 0532 0130 00"))));
    });
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("email_body_2k", |b| {
        b.iter(|| black_box(p.trace(black_box(&body))));
    });
    g.finish();

    let mut g = c.benchmark_group("add_untrusted");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("1MiB", |b| b.iter(|| black_box(index(&corpus))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

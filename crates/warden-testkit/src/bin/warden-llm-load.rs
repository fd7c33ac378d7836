//! `warden-llm-load`: OpenAI chat-completion load against `BASE/v1/chat/completions`; prints
//! requests/s and latency percentiles as one JSON line.
//!
//! One pooled HTTP/1.1 client with keep-alive connections; `--concurrency` workers each send a
//! small chat request, read the whole response (a stream until `data: [DONE]` and its end), and
//! send the next (closed loop). With `--rate`, the workers share a fixed schedule of requests per
//! second instead (open loop). In an open loop, latency counts from the moment the worker sends,
//! not from the scheduled start: tokio's timer wakes up to a millisecond late, which would blur a
//! proxy's added latency; how late the sends were is reported (`late_p50_us`, `late_p99_us`), so
//! a schedule the target could not keep up with still shows. Requests started during `--warmup`
//! are not measured; then it measures for
//! `--duration` or until `--requests` have been sent. For streams it also reports the time to
//! the first byte of the body.

#![allow(clippy::print_stdout, reason = "a tool that prints its figures")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

/// Chat-completion load generator.
#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the OpenAI-shaped API, e.g. `http://127.0.0.1:8080` (`/v1` may be included).
    #[arg(long)]
    url: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, default_value = "")]
    key: String,
    /// Model name sent in the request.
    #[arg(long, default_value = "bench")]
    model: String,
    /// Concurrent workers (and connections).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Measured duration (`10s`, `500ms`, `1m`; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration, conflicts_with = "requests")]
    duration: Duration,
    /// Measure this many requests instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Warm-up before measuring (not measured).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Ask for a streamed response (`"stream": true`).
    #[arg(long)]
    stream: bool,
    /// Requests per second across all workers (open loop); default: as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// A label printed with the figures.
    #[arg(long, default_value = "")]
    label: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 10s, 500ms or 1m"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{s}`: {e}"))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Percentiles of `samples` (sorted in place), in microseconds.
fn summary(samples: &mut [u64]) -> Value {
    samples.sort_unstable();
    json!({
        "p50_us": percentile(samples, 0.50),
        "p90_us": percentile(samples, 0.90),
        "p99_us": percentile(samples, 0.99),
        "max_us": samples.last().copied().unwrap_or(0),
    })
}

/// One answered request: total time, and time to the first body byte.
struct Sample {
    total: Duration,
    first_byte: Duration,
}

const DONE: &[u8] = b"data: [DONE]";

async fn request(
    client: &reqwest::Client,
    endpoint: &str,
    args: &Args,
    body: &Value,
    started: Instant,
) -> anyhow::Result<Sample> {
    let mut req = client.post(endpoint).json(body);
    if !args.key.is_empty() {
        req = req.bearer_auth(&args.key);
    }
    let mut resp = req.send().await?;
    let status = resp.status();
    let mut first_byte = None;
    let mut done = None;
    let mut text: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if first_byte.is_none() {
            first_byte = Some(started.elapsed());
        }
        // Look for the marker across the chunk boundary.
        let from = text.len().saturating_sub(DONE.len());
        text.extend_from_slice(&chunk);
        if done.is_none()
            && text
                .get(from..)
                .is_some_and(|tail| tail.windows(DONE.len()).any(|w| w == DONE))
        {
            done = Some(started.elapsed());
        }
    }
    let end = started.elapsed();
    if !status.is_success() {
        anyhow::bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(text.get(..300).unwrap_or(&text))
        );
    }
    let total = if args.stream {
        done.ok_or_else(|| anyhow::anyhow!("the stream ended without `data: [DONE]`"))?
    } else {
        let v: Value = serde_json::from_slice(&text)?;
        if v.pointer("/choices/0/message").is_none() {
            anyhow::bail!("no choices[0].message in the response");
        }
        end
    };
    Ok(Sample {
        total,
        first_byte: first_byte.unwrap_or(end),
    })
}

#[derive(Default)]
struct Worker {
    totals: Vec<u64>,
    first_bytes: Vec<u64>,
    late: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    last_end: Option<Instant>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let base = args.url.trim_end_matches('/');
    let endpoint: Arc<str> = if base.ends_with("/v1") {
        format!("{base}/chat/completions").into()
    } else {
        format!("{base}/v1/chat/completions").into()
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .no_proxy()
        .timeout(args.timeout)
        .build()?;
    let start = Instant::now();
    let warm_until = start + args.warmup;
    let stop_at = args.requests.is_none().then(|| warm_until + args.duration);
    let issued = Arc::new(AtomicU64::new(0));
    let interval = args
        .rate
        .map(|r| Duration::from_nanos(1_000_000_000 / r.max(1)));
    let next_slot = Arc::new(std::sync::Mutex::new(start));
    let workers = TaskTracker::new();
    let mut handles = Vec::new();
    for w in 0..args.concurrency {
        let (client, args, endpoint, issued, next_slot) = (
            client.clone(),
            args.clone(),
            endpoint.clone(),
            issued.clone(),
            next_slot.clone(),
        );
        handles.push(workers.spawn(async move {
            let mut out = Worker::default();
            let mut i = 0u64;
            loop {
                let scheduled = match interval {
                    Some(iv) => {
                        let slot = {
                            let Ok(mut n) = next_slot.lock() else { break };
                            let s = *n;
                            *n += iv;
                            s
                        };
                        tokio::time::sleep_until(slot.into()).await;
                        slot
                    }
                    None => Instant::now(),
                };
                let measured = scheduled >= warm_until;
                if measured {
                    match (stop_at, args.requests) {
                        (Some(stop), _) if scheduled >= stop => break,
                        (None, Some(n)) if issued.fetch_add(1, Ordering::Relaxed) >= n => break,
                        _ => {}
                    }
                }
                i += 1;
                let body = json!({
                    "model": args.model,
                    "messages": [
                        {"role": "system", "content": "You are a terse assistant."},
                        {"role": "user", "content": format!("Say hello to worker {w}, request {i}.")},
                    ],
                    "max_tokens": 32,
                    "stream": args.stream,
                });
                let sent = Instant::now();
                let result = request(&client, &endpoint, &args, &body, sent).await;
                if !measured {
                    continue;
                }
                if interval.is_some() {
                    out.late.push(micros(sent.saturating_duration_since(scheduled)));
                }
                out.last_end = Some(Instant::now());
                match result {
                    Ok(s) => {
                        out.totals.push(micros(s.total));
                        out.first_bytes.push(micros(s.first_byte));
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            out
        }));
    }
    workers.close();
    let mut totals = Vec::new();
    let mut first_bytes = Vec::new();
    let mut late = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut last_end = warm_until;
    for h in handles {
        let w = h.await?;
        totals.extend(w.totals);
        first_bytes.extend(w.first_bytes);
        late.extend(w.late);
        errors += w.errors;
        if first_error.is_none() {
            first_error = w.first_error;
        }
        if let Some(t) = w.last_end {
            last_end = last_end.max(t);
        }
    }
    let elapsed = last_end.saturating_duration_since(warm_until).as_secs_f64();
    let count = totals.len();
    let rps = if elapsed > 0.0 {
        (count as u64 + errors) as f64 / elapsed
    } else {
        0.0
    };
    let mut out = json!({
        "label": args.label,
        "stream": args.stream,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "count": count,
        "errors": errors,
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "requests_per_second": (rps * 10.0).round() / 10.0,
    });
    if let (Value::Object(o), Value::Object(s)) = (&mut out, summary(&mut totals)) {
        o.extend(s);
        if args.stream
            && let Value::Object(f) = summary(&mut first_bytes)
        {
            o.extend(f.into_iter().map(|(k, v)| (format!("ttfb_{k}"), v)));
        }
        if args.rate.is_some() {
            late.sort_unstable();
            o.insert("late_p50_us".into(), json!(percentile(&late, 0.50)));
            o.insert("late_p99_us".into(), json!(percentile(&late, 0.99)));
        }
        o.insert("first_error".into(), json!(first_error));
    }
    println!("{out}");
    Ok(())
}

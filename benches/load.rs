//! A closed-loop HTTP load client for `scripts/bench-serve`: CLIENTS connections, each sending
//! the next request (a path drawn at random from a list) as soon as the last answer's body is
//! read, for SECONDS; every request's latency is recorded, so the percentiles are exact.
//!
//! wrk's own percentiles are used for the uniform loads; on the mixed load from a fresh start
//! they contradicted Little's law (a mean of 356 ms at 7,300 answers/s over 64 connections),
//! so the mix is measured here.
//!
//! ```text
//! cargo bench --bench load --target-dir /work/target-release -- \
//!     BASE_URL CLIENTS SECONDS PATHS_FILE [HEADER: VALUE]...
//! ```
//!
//! Prints one JSON object: requests, answers per second, p50/p90/p99/max in milliseconds,
//! non-2xx/3xx answers, timeouts (no answer within 30 s) and connection errors.

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() < 4 {
        eprintln!("usage: load BASE_URL CLIENTS SECONDS PATHS_FILE [HEADER: VALUE]...");
        std::process::exit(2);
    }
    let base = args[0].trim_end_matches('/').to_string();
    let clients: usize = args[1].parse().expect("CLIENTS is a number");
    let seconds: u64 = args[2].parse().expect("SECONDS is a number");
    let paths: Vec<String> = std::fs::read_to_string(&args[3])
        .expect("PATHS_FILE is readable")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| format!("{base}{}", line.trim()))
        .collect();
    assert!(!paths.is_empty(), "PATHS_FILE lists no path");
    let mut headers = reqwest::header::HeaderMap::new();
    for header in &args[4..] {
        let (name, value) = header.split_once(':').expect("HEADER: VALUE");
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            value.trim().parse().expect("header value"),
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|index| {
            let (client, paths) = (client.clone(), paths.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (index as u64 + 1);
                while Instant::now() < deadline {
                    // xorshift64: a fixed, cheap sequence per client.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let url = &paths[(state % paths.len() as u64) as usize];
                    let sent = Instant::now();
                    match client.get(url).send().await {
                        Ok(response) => {
                            let ok = response.status().is_success()
                                || response.status().is_redirection();
                            match response.bytes().await {
                                Ok(_) if ok => {}
                                Ok(_) => tally.non_2xx += 1,
                                Err(error) if error.is_timeout() => tally.timeouts += 1,
                                Err(_) => tally.errors += 1,
                            }
                        }
                        Err(error) if error.is_timeout() => tally.timeouts += 1,
                        Err(_) => tally.errors += 1,
                    }
                    tally.latencies.push(sent.elapsed().as_micros() as u64);
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await.expect("client task");
        all.latencies.extend(tally.latencies);
        all.non_2xx += tally.non_2xx;
        all.timeouts += tally.timeouts;
        all.errors += tally.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort_unstable();
    let at = |q: f64| {
        let n = all.latencies.len();
        let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        all.latencies[index] as f64 / 1000.0
    };
    println!(
        "{{\"requests\": {}, \"rps\": {:.1}, \"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}, \"non_2xx\": {}, \"timeouts\": {}, \"errors\": {}}}",
        all.latencies.len(),
        all.latencies.len() as f64 / elapsed,
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        all.non_2xx,
        all.timeouts,
        all.errors
    );
}

/// One client's requests.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    non_2xx: u64,
    timeouts: u64,
    errors: u64,
}

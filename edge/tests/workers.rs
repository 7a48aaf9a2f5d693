//! The edge in front of several worker addresses behind one host name (a
//! headless Service), black-box: the edge binary runs in its own mount
//! namespace with an `/etc/hosts` naming `workers` (see `support::Launch`).
//! Keyed routing, a killed worker, a black-holed address. Each test prints
//! its figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// Tests print the figures they measure.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use platform_testkit::get;
use support::{Edge, Launch, Reply, StandIn, sample};

const A: [u8; 4] = [127, 0, 0, 2];
const B: [u8; 4] = [127, 0, 0, 3];

/// One port free on both addresses.
fn shared_port() -> u16 {
    for _ in 0..50 {
        let a = std::net::TcpListener::bind(SocketAddr::from((A, 0))).unwrap();
        let port = a.local_addr().unwrap().port();
        if std::net::TcpListener::bind(SocketAddr::from((B, port))).is_ok() {
            return port;
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.3");
}

fn hosts() -> Vec<(String, IpAddr)> {
    vec![
        ("workers".to_owned(), IpAddr::from(A)),
        ("workers".to_owned(), IpAddr::from(B)),
    ]
}

/// Every request a miss: no freshness, nothing stale.
const NO_CACHE: &[(&str, &str)] = &[
    ("CACHE_TTL_SECONDS", "0"),
    ("CACHE_STALE_WHILE_REVALIDATE_SECONDS", "0"),
    ("CACHE_STALE_IF_ERROR_SECONDS", "0"),
    ("CLIENT_MISS_RATE_PER_SECOND", "0"),
    ("UPSTREAM_RESOLVE_INTERVAL_SECONDS", "0.5"),
];

async fn edge_for(port: u16, extra: &[(&str, &str)]) -> Edge {
    let url = format!("http://workers:{port}");
    let mut env = NO_CACHE.to_vec();
    env.extend_from_slice(extra);
    Edge::launch(
        &url,
        &env,
        Launch {
            hosts: hosts(),
            ..Launch::default()
        },
    )
    .await
}

fn ok_worker() -> impl Fn(&str) -> Reply + Send + Sync + 'static {
    |_| Reply::json(200, r#"{"value":"v"}"#)
}

/// Which worker served each key, from the workers' own request logs.
fn homes(a: &StandIn, b: &StandIn, keys: &[String]) -> BTreeMap<String, (usize, usize)> {
    keys.iter()
        .map(|k| (k.clone(), (a.count(k), b.count(k))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_reaches_one_worker_and_a_killed_workers_keys_move_without_errors() {
    let port = shared_port();
    let a = StandIn::start_on(SocketAddr::from((A, port)), ok_worker()).await;
    let b = StandIn::start_on(SocketAddr::from((B, port)), ok_worker()).await;
    let edge = edge_for(port, &[]).await;
    let keys: Vec<String> = (0..24).map(|i| format!("/parameter/key-{i}")).collect();
    // Misses for one key always reach the same worker...
    for _ in 0..3 {
        for k in &keys {
            assert_eq!(get(edge.http, k).await.status, 200);
        }
    }
    let before = homes(&a, &b, &keys);
    for (k, (na, nb)) in &before {
        assert!(
            (*na, *nb) == (3, 0) || (*na, *nb) == (0, 3),
            "{k}: {na} on a, {nb} on b"
        );
    }
    let on_a = before.values().filter(|(na, _)| *na > 0).count();
    println!(
        "24 keys: {on_a} live on 127.0.0.2, {} on 127.0.0.3",
        24 - on_a
    );
    assert!(on_a > 0 && on_a < 24, "both workers get keys");
    // ...while unkeyed requests are spread over both.
    for _ in 0..6 {
        assert_eq!(get(edge.http, "/s3-buckets").await.status, 200);
    }
    assert!(a.count("/s3-buckets") >= 2 && b.count("/s3-buckets") >= 2);

    // Worker a dies: its keys move to b, b's keys stay, nothing fails.
    a.stop();
    let mut failures = 0;
    for _ in 0..2 {
        for k in &keys {
            failures += usize::from(get(edge.http, k).await.status != 200);
        }
    }
    let after = homes(&a, &b, &keys);
    for (k, (na, nb)) in &after {
        let (na0, nb0) = before[k];
        assert_eq!(*na, na0, "{k}: no new request reached the dead worker");
        assert_eq!(*nb, nb0 + 2, "{k}: served by the survivor");
    }
    let m = edge.metrics().await;
    let fallbacks = sample(&m, "edge_upstream_keyed_fallbacks_total", &[]).unwrap();
    println!("worker killed: {failures} client failures, {fallbacks} keyed fallbacks");
    assert_eq!(failures, 0);
    assert!(fallbacks >= on_a as f64, "{m}");
}

/// A listener whose accept queue is full: new connections hang in SYN
/// (packets dropped, no refusal), as for a black-holed pod address.
fn black_hole(addr: SocketAddr) -> (socket2::Socket, Vec<std::net::TcpStream>) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(0).unwrap();
    let mut fill = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => fill.push(c),
            Err(_) => break,
        }
    }
    (s, fill)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_address_costs_no_errors_and_is_skipped() {
    let port = shared_port();
    let good = StandIn::start_on(SocketAddr::from((A, port)), ok_worker()).await;
    let (_hole, _filled) = black_hole(SocketAddr::from((B, port)));
    let edge = edge_for(port, &[("UPSTREAM_CONNECT_TIMEOUT_SECONDS", "0.5")]).await;
    let mut times = Vec::new();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for i in 0..120 {
        // Keyed and unkeyed misses alike.
        let path = if i % 2 == 0 {
            "/s3-buckets".to_owned()
        } else {
            format!("/parameter/k{i}")
        };
        let t = Instant::now();
        let res = get(edge.http, &path).await;
        times.push(t.elapsed());
        *statuses.entry(res.status).or_default() += 1;
    }
    let mut sorted = times.clone();
    sorted.sort();
    let p50 = sorted[sorted.len() / 2];
    let p99 = sorted[sorted.len() * 99 / 100];
    let slow = times
        .iter()
        .filter(|t| **t >= Duration::from_millis(400))
        .count();
    let slow_after_first_ten = times[10..]
        .iter()
        .filter(|t| **t >= Duration::from_millis(400))
        .count();
    let m = edge.metrics().await;
    println!(
        "one of two addresses black-holed: {statuses:?}, p50 {p50:?}, p99 {p99:?}, {slow} requests waited on it \
         ({slow_after_first_ten} after the first ten); ejected now: {:?}",
        sample(&m, "edge_upstream_ejected_addresses", &[])
    );
    assert_eq!(
        statuses.get(&200),
        Some(&120),
        "no 504, no 503: {statuses:?}"
    );
    assert_eq!(slow_after_first_ten, 0, "skipped once ejected");
    assert!(slow <= 2, "{slow}");
    assert_eq!(
        sample(&m, "edge_upstream_ejected_addresses", &[]),
        Some(1.0)
    );
    assert_eq!(good.total(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_addresses_are_known_before_the_first_request_is_served() {
    let port = shared_port();
    let a = StandIn::start_on(SocketAddr::from((A, port)), ok_worker()).await;
    let b = StandIn::start_on(SocketAddr::from((B, port)), ok_worker()).await;
    let edge = edge_for(port, &[]).await;
    // Ready means served: the first misses already have both addresses.
    for path in ["/s3-buckets", "/parameter/first"] {
        assert_eq!(get(edge.http, path).await.status, 200, "{path}");
    }
    let logs = edge.logs();
    let resolved = logs.find("auxiliary service addresses");
    let starting = logs.find("edge starting");
    println!("first resolution at byte {resolved:?} of the log, start at {starting:?}");
    assert!(
        resolved.is_some() && starting.is_some() && resolved < starting,
        "the addresses are resolved before the edge starts serving:\n{logs}"
    );
    assert_eq!(a.total() + b.total(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pooled_connection_is_retried_on_its_own_address_not_an_ejected_one() {
    let port = shared_port();
    // a drops every reused connection when the next request arrives on it;
    // b refuses (its port held by a socket that never listens).
    let a = StandIn::start_on(SocketAddr::from((A, port)), |_| {
        Reply::json(200, r#"{"buckets":[]}"#).then_close()
    })
    .await;
    let _refusing = platform_testkit::refusing_at(SocketAddr::from((B, port)));
    // One retry only: it must go to a again (on a new connection), not to b.
    let edge = edge_for(port, &[("UPSTREAM_RETRIES", "1")]).await;
    // Until b is ejected (the round-robin reaches it once), a request may
    // meet both a refusal and a dead pooled connection: two failures, one retry.
    for _ in 0..10 {
        if sample(
            &edge.metrics().await,
            "edge_upstream_ejected_addresses",
            &[],
        ) == Some(1.0)
        {
            break;
        }
        get(edge.http, "/s3-buckets").await;
    }
    let mut statuses = BTreeMap::<u16, usize>::new();
    for _ in 0..20 {
        *statuses
            .entry(get(edge.http, "/s3-buckets").await.status)
            .or_default() += 1;
    }
    let m = edge.metrics().await;
    println!(
        "b refused and ejected, a drops reused connections: {statuses:?}, a saw {} requests, retries {:?}",
        a.total(),
        sample(
            &m,
            "edge_upstream_retries_total",
            &["route=\"/s3-buckets\""]
        )
    );
    assert_eq!(statuses.get(&200), Some(&20), "{statuses:?}");
    assert_eq!(
        sample(&m, "edge_upstream_ejected_addresses", &[]),
        Some(1.0)
    );
}

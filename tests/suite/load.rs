//! Serving at load: kept answers as bytes (compressed, weakly revalidated), identical work
//! computed once, heavy work bounded with a clear 503 while cheap answers never wait.

use std::io::Read;

use crate::support::*;

const WEEK: &str = "2026-W44";

/// The rollup store's activity as `/healthz` shows it: (reused, computed, queries).
async fn activity(server: &TestServer) -> (u64, u64, u64) {
    let health = server.get_json("/healthz").await;
    let activity = &health["rollups"]["activity"];
    let number = |name: &str| activity[name].as_u64().expect(name);
    (number("reused"), number("computed"), number("queries"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_compute_once_and_are_served_as_kept_compressed_bytes() {
    let data = demo_data_copy();
    let store = tempfile::TempDir::new().expect("store");
    let store_path = store.path().to_str().expect("utf-8").to_string();
    let server = TestServer::start(
        &repo(),
        data.path().to_str().expect("utf-8"),
        "",
        &[("KPI_ROLLUPS", &store_path)],
    )
    .await;
    let url = format!("{}/reports/sales-pipeline/{WEEK}", server.base);

    // Eight clients open the same cold report at once: one computation answers them all, and
    // a ninth computing the same report alone computes exactly as much.
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client.get(&url).send().await.expect("request");
                assert_eq!(response.status().as_u16(), 200);
                response.text().await.expect("body")
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for request in requests {
        bodies.push(request.await.expect("task"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one page for all");
    let (_, computed_together, _) = activity(&server).await;
    // Its own copy of the data: nothing kept in this process for the first server's files.
    let alone_data = demo_data_copy();
    let alone_store = tempfile::TempDir::new().expect("store");
    let alone = TestServer::start(
        &repo(),
        alone_data.path().to_str().expect("utf-8"),
        "",
        &[("KPI_ROLLUPS", alone_store.path().to_str().expect("utf-8"))],
    )
    .await;
    let page = alone
        .client
        .get(format!("{}/reports/sales-pipeline/{WEEK}", alone.base))
        .send()
        .await
        .expect("request");
    assert_eq!(page.text().await.expect("body"), bodies[0]);
    let (_, computed_alone, _) = activity(&alone).await;
    assert!(computed_alone > 0);
    assert_eq!(
        computed_together, computed_alone,
        "eight concurrent requests computed what one does"
    );

    // The kept page in each coding decodes to the same bytes; a weak validator revalidates.
    let identity = server.client.get(&url).send().await.expect("request");
    let etag = identity.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    assert!(identity.headers().get("content-encoding").is_none());
    assert_eq!(identity.headers()["vary"], "accept-encoding");
    let identity = identity.bytes().await.expect("bytes");
    for (coding, accept) in [("gzip", "gzip"), ("br", "gzip, deflate, br")] {
        let response = server
            .client
            .get(&url)
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("request");
        assert_eq!(response.headers()["content-encoding"], coding);
        assert_eq!(response.headers()["etag"].to_str().expect("etag"), etag);
        let compressed = response.bytes().await.expect("bytes");
        assert!(compressed.len() * 4 < identity.len(), "{coding} compresses");
        let mut decoded = Vec::new();
        match coding {
            "gzip" => flate2::read::GzDecoder::new(&compressed[..])
                .read_to_end(&mut decoded)
                .expect("gzip"),
            _ => brotli::Decompressor::new(&compressed[..], 4096)
                .read_to_end(&mut decoded)
                .expect("brotli"),
        };
        assert_eq!(decoded, identity, "{coding} decodes to the page");
    }
    for validator in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", W/{etag}"),
    ] {
        let response = server
            .client
            .get(&url)
            .header("if-none-match", &validator)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 304, "{validator}");
    }

    // The metric API: the same query again is answered from the kept bytes (the store is not
    // even asked); a landed file gives a new answer.
    let query = "/api/v1/metrics/pipeline_created?from=2026-W34&to=2026-W46&by=channel&compare=previous,year_ago";
    let first = server.get_json(query).await;
    let before = activity(&server).await;
    let second = server.get_json(query).await;
    assert_eq!(first, second);
    assert_eq!(
        activity(&server).await,
        before,
        "answered from the kept bytes"
    );
    land_copy(
        &data.path().join("crm/opportunities"),
        "relanded-copy.parquet",
    );
    server.settle().await;
    let third = server.get_json(query).await;
    assert_ne!(activity(&server).await, before, "a landing is computed in");
    // The new answer is the reference path's, over the same files.
    let reference = TestServer::start(
        &repo(),
        data.path().to_str().expect("utf-8"),
        "",
        &[("KPI_ROLLUPS_ENABLED", "false")],
    )
    .await;
    let expected = reference.get_json(query).await;
    assert!(
        third["points"] == expected["points"],
        "the answer after the landing differs from the reference path's"
    );
    assert!(
        first["points"] != third["points"],
        "the landing changed the numbers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_while_cheap_answers_do_not_wait() {
    // One slot, and a heavy request may wait 1 s for it (half of its 2 s limit).
    let server = TestServer::start(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        "max_concurrent_builds = 1\nrequest_timeout_ms = 2000\nsql_timeout_ms = 1500",
        &[],
    )
    .await;
    // A query that runs until its limit cancels it holds the only slot.
    let slow = "SELECT count(*) FROM analytics.sessions a, analytics.sessions b WHERE a.session_id < b.session_id";
    let holder = {
        let (client, base) = (server.client.clone(), server.base.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/sql"))
                .json(&serde_json::json!({ "sql": slow }))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    };
    let busy = eventually(10, || async {
        server.get_json("/healthz").await["work"]["running"].as_u64() == Some(1)
    })
    .await;
    assert!(busy, "the slow query holds the slot");

    // Cheap answers meanwhile: no wait.
    for path in ["/healthz", "/api/v1/metrics", "/"] {
        let started = std::time::Instant::now();
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{path} waited {:?} behind heavy work",
            started.elapsed()
        );
    }

    // Heavy work behind it waits its turn, then is refused with a time to come back.
    let refused = server
        .client
        .post(format!("{}/api/v1/sql", server.base))
        .json(&serde_json::json!({ "sql": "SELECT 1 AS one" }))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("max_concurrent_builds"),
        "{body}"
    );
    assert_eq!(
        holder.await.expect("task"),
        503,
        "the slow query hit its limit"
    );

    // The slot is free again once the slow query is cancelled (a nested-loop join notices
    // its cancellation between probe batches, which can take a few seconds on two cores).
    let free = eventually(30, || async {
        server.sql("SELECT 1 AS one").await.0 == 200
    })
    .await;
    assert!(free, "a query runs again after the slow one stopped");
    assert_eq!(server.get_json("/healthz").await["work"]["waiting"], 0);
}

//! A `reqwest` client with the bulwark Notion preset, through `reqwest-middleware`, talking to
//! an embedded FakeNotion (no network, no token needed): a scripted 502 is retried, and during
//! an outage the last good copy of a page answers, marked in `Cache-Status`, and a read with no
//! stored copy is refused locally while the circuit is open.
//!
//! ```sh
//! cargo run --example reqwest_notion
//! ```

use bulwark::notion::NotionLayer;
use bulwark_reqwest::BulwarkMiddleware;
use bulwark_testkit::{FakeNotion, Fault};
use reqwest_middleware::ClientBuilder;

const TOKEN: &str = "secret_example";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let fake = FakeNotion::builder()
        .tokens([TOKEN])
        .seed_pages(1)
        .start()
        .await?;
    let page = fake.pages()[0].id.clone();

    // The one line: `.with(BulwarkMiddleware::new(layer))`. The layer keeps the state (bucket,
    // breaker, cache), so `notion.stats()` sees every request of the client.
    let notion = NotionLayer::builder().token(TOKEN).build()?;
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build()?)
        .with(BulwarkMiddleware::new(notion.clone()))
        .build();
    let url = format!("{}/v1/pages/{page}", fake.url());

    fake.faults().script([Fault::Status(502)]);
    let res = client.get(&url).send().await?;
    println!(
        "GET page: {} after {} retry",
        res.status(),
        notion.stats().retry.retries
    );
    let live = res.bytes().await?;

    // A search is a read-only POST: its JSON body is buffered, so a retry sends it again.
    fake.faults().script([Fault::Status(503)]);
    let res = client
        .post(format!("{}/v1/search", fake.url()))
        .header("content-type", "application/json")
        .body(r#"{"query": "roadmap"}"#)
        .send()
        .await?;
    println!("POST search: {}", res.status());

    fake.faults().outage(true);
    let res = client.get(&url).send().await?;
    let cache_status = res.headers().get("cache-status").cloned();
    println!(
        "GET page during an outage: {} {cache_status:?}",
        res.status()
    );
    assert_eq!(res.bytes().await?, live, "the last good copy");

    // A read with no stored copy, while the breaker is open: refused locally, unsent.
    match client
        .get(format!("{}/v1/users/me", fake.url()))
        .send()
        .await
    {
        Ok(res) => println!("GET users/me during the outage: {}", res.status()),
        Err(err) => match bulwark_reqwest::rejection(&err) {
            Some(refused) => println!(
                "GET users/me during the outage: refused locally ({}), retry after {:?}",
                refused.status(),
                refused.retry_after()
            ),
            None => return Err(err.into()),
        },
    }
    fake.faults().outage(false);

    let stats = notion.stats();
    println!(
        "attempts {}, retries {}, stale answers {}, breaker {:?}",
        stats.retry.attempts, stats.retry.retries, stats.cache.stale_served, stats.breaker.state
    );
    fake.shutdown().await;
    Ok(())
}

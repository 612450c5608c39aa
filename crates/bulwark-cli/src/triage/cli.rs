//! `bulwark triage`'s flags and [`run`], which returns the exit code.

use std::{future::Future, io::Write, path::PathBuf, time::Duration};

use crate::triage::{
    duration::parse_duration,
    incident::Incident,
    notify::post_slack,
    observe::{Checker, Target, NOTION_STATUS_URL},
    render::{self, Format},
    schema::ExpectedSchema,
    simulate::{embedded, Simulate},
    watch::{watch, WatchConfig, DEFAULT_ALERT_AFTER},
};

/// Triage's own failure: FakeNotion could not start, a client could not be built.
pub const EXIT_FAILURE: u8 = 1;
/// A usage error (bad flag values, a missing token).
pub const EXIT_USAGE: u8 = 2;
/// The most `--page` flags: with the other checks, 14 steps of at most
/// [`MAX_STEP_TIMEOUT`] each stay under 5 minutes.
pub const MAX_PAGES: usize = 10;
/// The largest `--timeout`.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// `bulwark triage --help`, after the options.
pub const AFTER_HELP: &str = "\
Verdicts and exit codes (the runbook's decision tree, in order; the first match wins):
   0  healthy           every check answers                        nothing to do
  13  network           never reached the API; a proxy's page      check egress/proxy/DNS
  10  notion_outage     status page major/critical; 5xx, 529,      serve stale, let the breaker
                        the edge's HTML, timeouts                  fail fast, watch the status page
  11  token_invalid     401 unauthorized                           new integration secret / OAuth
  12  rate_limited      429 rate_limited                           wait Retry-After, then slow down
  15  pages_unshared    404 on a --page or the --data-source;      re-share through the Connections
                        a page in the trash                        menu; check the trash
  16  schema_changed    the data source's properties differ        update the property mapping
  14  integration_side  other 4xx (403 restricted_resource, 400)   fix the request or capabilities
   1  triage itself failed              2  usage error

Examples:
  bulwark triage                                   # an embedded FakeNotion
  bulwark triage --simulate outage                 # see a verdict (exit 10); also revoked,
                                                   # rate-limited, network, restricted,
                                                   # unshared, schema-changed
  NOTION_TOKEN=secret_… bulwark triage --base-url https://api.notion.com
  NOTION_TOKEN=secret_… bulwark triage --base-url https://api.notion.com \\
      --data-source 1f2e… --expect-properties \"Name:title,Status:select,Due:date\" \\
      --page 5983… --page 77aa… --format json
  bulwark triage --base-url https://api.notion.com --schema schema.json --data-source 1f2e…
  bulwark triage --base-url https://api.notion.com --format slack \\
      --notify https://hooks.slack.com/services/…
  bulwark triage --base-url https://api.notion.com --watch 30s --for 1h \\
      --notify https://hooks.slack.com/services/…   # transitions; postmortem at the end
  bulwark fake-notion --port 7777 &
  bulwark triage --base-url http://127.0.0.1:7777 --format postmortem";

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() || d > MAX_STEP_TIMEOUT {
        return Err(format!(
            "must be above 0 and at most {} s (so a full run stays under 5 minutes)",
            MAX_STEP_TIMEOUT.as_secs()
        ));
    }
    Ok(d)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_millis(100) {
        return Err("the interval must be at least 100ms".to_owned());
    }
    Ok(d)
}

fn parse_id(text: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("a Notion id is letters, digits, `-` and `_` (e.g. 1f2e3d4c-…)".to_owned())
    }
}

/// The token sent to an API on loopback when none is given: FakeNotion accepts any.
pub const LOCAL_PLACEHOLDER_TOKEN: &str = "secret_bulwark_triage_local";

/// Whether `base_url`'s host is `localhost` or a loopback address.
#[must_use]
pub fn is_loopback(base_url: &str) -> bool {
    let host = base_url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned));
    host.is_some_and(|host| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Notion's status page, or `{base_url}/api/v2/status.json` for an API on loopback (a
/// FakeNotion, `bulwark fake-notion`, serves one): checking a local emulator never reaches
/// out to the Internet.
#[must_use]
pub fn default_status_url(base_url: &str) -> String {
    if is_loopback(base_url) {
        format!("{}/api/v2/status.json", base_url.trim_end_matches('/'))
    } else {
        NOTION_STATUS_URL.to_owned()
    }
}

/// `bulwark triage`: the incident runbook as a command.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct TriageArgs {
    /// The Notion API to check (e.g. `https://api.notion.com`). Without it, an embedded
    /// FakeNotion is checked (see --simulate).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// The integration token [default: NOTION_TOKEN; for a loopback --base-url without
    /// either, a placeholder FakeNotion accepts]. Prefer the variable: a flag shows in the
    /// process list.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The Statuspage status.json to read [default: Notion's; {base-url}/api/v2/status.json
    /// for a base URL on loopback (a FakeNotion) or without --base-url].
    #[arg(long, value_name = "URL")]
    pub status_url: Option<String>,
    /// Query this data source instead of POST /v1/search; it should exist (404 means
    /// pages_unshared).
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    pub data_source: Option<String>,
    /// The properties the data source should have, NAME:TYPE,… (e.g.
    /// "Name:title,Status:select,Due:date"); a difference is schema_changed.
    #[arg(
        long,
        value_name = "SPEC",
        requires = "data_source",
        conflicts_with = "schema"
    )]
    pub expect_properties: Option<String>,
    /// Like --expect-properties, from a JSON file: {"Name": "title", …} or a data source's
    /// "properties" object.
    #[arg(long, value_name = "FILE", requires = "data_source")]
    pub schema: Option<PathBuf>,
    /// A page that should exist (repeatable, at most 10); 404 object_not_found or in the
    /// trash means pages_unshared.
    #[arg(long = "page", value_name = "ID", value_parser = parse_id)]
    pub pages: Vec<String>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Shorthand for --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// The bound on each step (e.g. 10s, 500ms; at most 15s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Post the Slack-format message to this incoming webhook ({"text": …}): once, or with
    /// --watch on each alert.
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Check every INTERVAL (e.g. 30s) and print only transitions; at the end, the
    /// postmortem draft (or --format).
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    pub watch: Option<Duration>,
    /// With --watch: stop after this long (e.g. 10m) [default: until Ctrl-C].
    #[arg(long = "for", value_name = "DURATION", requires = "watch", value_parser = parse_duration)]
    pub for_duration: Option<Duration>,
    /// With --watch: alert after N consecutive failed checks.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ALERT_AFTER,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub alert_after: u32,
    /// Set up the embedded FakeNotion to show a verdict.
    #[arg(long, value_enum, conflicts_with = "base_url")]
    pub simulate: Option<Simulate>,
}

impl TriageArgs {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }

    /// The target the flags describe, before the base URL and token are settled.
    fn target(&self) -> Result<Target, String> {
        if self.pages.len() > MAX_PAGES {
            return Err(format!("at most {MAX_PAGES} --page flags"));
        }
        let expected_schema = match (&self.expect_properties, &self.schema) {
            (Some(spec), _) => {
                Some(ExpectedSchema::parse(spec).map_err(|e| format!("--expect-properties: {e}"))?)
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--schema {}: {e}", path.display()))?;
                Some(
                    ExpectedSchema::from_json(&text)
                        .map_err(|e| format!("--schema {}: {e}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        let mut target = Target::new(self.base_url.clone().unwrap_or_default(), "");
        target.data_source.clone_from(&self.data_source);
        target.expected_schema = expected_schema;
        target.pages.clone_from(&self.pages);
        target.step_timeout = self.timeout;
        Ok(target)
    }
}

/// Runs `bulwark triage`: prints to stdout, stops a watch on Ctrl-C; returns the exit code.
pub async fn run(args: &TriageArgs) -> u8 {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    run_with(args, &mut std::io::stdout(), ctrl_c).await
}

/// [`run`] writing to `out` and stopping a watch when `stop` completes.
pub async fn run_with<W: Write>(
    args: &TriageArgs,
    out: &mut W,
    stop: impl Future<Output = ()>,
) -> u8 {
    let mut target = match args.target() {
        Ok(target) => target,
        Err(err) => {
            eprintln!("bulwark triage: {err}");
            return EXIT_USAGE;
        }
    };
    // Keep the embedded FakeNotion alive until the checks are done.
    let (_fake, mode) = match &args.base_url {
        Some(base_url) => {
            let token = args
                .token
                .clone()
                .or_else(|| std::env::var("NOTION_TOKEN").ok())
                .filter(|t| !t.is_empty());
            let token = match token {
                Some(token) => token,
                None if is_loopback(base_url) => {
                    eprintln!(
                        "bulwark triage: no NOTION_TOKEN: a placeholder token for the local API \
                         at {base_url} (FakeNotion accepts any)"
                    );
                    LOCAL_PLACEHOLDER_TOKEN.to_owned()
                }
                None => {
                    eprintln!("bulwark triage: set NOTION_TOKEN (or --token) to check {base_url}");
                    return EXIT_USAGE;
                }
            };
            target.token = token;
            target.status_url = args
                .status_url
                .clone()
                .unwrap_or_else(|| default_status_url(base_url));
            (None, "real API".to_owned())
        }
        None => {
            let simulate = args.simulate.unwrap_or(Simulate::Healthy);
            match embedded(simulate, target, args.status_url.clone()).await {
                Ok(embedded) => {
                    target = embedded.target;
                    (
                        embedded.fake,
                        format!("embedded FakeNotion, --simulate {}", simulate.as_str()),
                    )
                }
                Err(err) => {
                    eprintln!("bulwark triage: cannot start FakeNotion: {err}");
                    return EXIT_FAILURE;
                }
            }
        }
    };
    let step_timeout = target.step_timeout;
    let checker = match Checker::new(target) {
        Ok(checker) => checker,
        Err(err) => {
            eprintln!("bulwark triage: {err}");
            return EXIT_FAILURE;
        }
    };

    if let Some(interval) = args.watch {
        let config = WatchConfig {
            interval,
            duration: args.for_duration,
            alert_after: args.alert_after,
            notify: args.notify.clone(),
        };
        let state = watch(&checker, &config, out, stop).await;
        if let Some(incident) = state.incident() {
            let _ = writeln!(out, "\n{}", render::incident(&incident, args.format()));
        }
        return state.exit_code();
    }

    let run = checker.run().await;
    let _ = writeln!(out, "{}", render::run(&run, args.format(), &mode));
    let _ = out.flush();
    if let Some(url) = &args.notify {
        let text = render::slack(&Incident::from_run(&run));
        if let Err(err) = post_slack(url, &text, step_timeout).await {
            eprintln!("bulwark triage: {err}");
        }
    }
    run.diagnosis.verdict.exit_code()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        triage: TriageArgs,
    }

    fn parse(args: &[&str]) -> Result<TriageArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("triage").chain(args.iter().copied())).map(|c| c.triage)
    }

    #[test]
    fn the_status_page_of_a_local_api_is_local() {
        assert_eq!(
            default_status_url("https://api.notion.com"),
            NOTION_STATUS_URL
        );
        assert_eq!(
            default_status_url("http://127.0.0.1:7777/"),
            "http://127.0.0.1:7777/api/v2/status.json"
        );
        assert_eq!(
            default_status_url("http://localhost:1"),
            "http://localhost:1/api/v2/status.json"
        );
        assert_eq!(
            default_status_url("http://[::1]:1"),
            "http://[::1]:1/api/v2/status.json"
        );
        assert_eq!(default_status_url("not a url"), NOTION_STATUS_URL);
    }

    #[test]
    fn flags_and_their_bounds() {
        let args = parse(&[
            "--base-url",
            "http://127.0.0.1:1",
            "--data-source",
            "ds_1",
            "--expect-properties",
            "Name:title",
            "--page",
            "p1",
            "--page",
            "p2",
            "--timeout",
            "500ms",
            "--watch",
            "30s",
            "--for",
            "10m",
            "--json",
        ])
        .unwrap();
        assert_eq!(args.format(), Format::Json);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(args.watch, Some(Duration::from_secs(30)));
        assert_eq!(args.for_duration, Some(Duration::from_secs(600)));
        assert_eq!(args.alert_after, DEFAULT_ALERT_AFTER);
        let target = args.target().unwrap();
        assert_eq!(target.pages, ["p1", "p2"]);
        assert_eq!(target.expected_schema.unwrap().properties().len(), 1);
        // The former example's `--timeout 10` still works.
        assert_eq!(
            parse(&["--timeout", "10"]).unwrap().timeout,
            Duration::from_secs(10)
        );
        for bad in [
            &["--timeout", "0s"][..],
            &["--timeout", "16s"],
            &["--watch", "10ms"],
            &["--for", "1m"],
            &["--expect-properties", "Name:title"],
            &["--page", "../users/me"],
            &["--data-source", "a b"],
            &["--alert-after", "0", "--watch", "1s"],
            &["--json", "--format", "slack"],
            &["--simulate", "outage", "--base-url", "http://x"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_PAGES)
            .flat_map(|i| ["--page".to_owned(), format!("p{i}")])
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(parse(&many).unwrap().target().is_err());
        let bad_spec = parse(&["--data-source", "d", "--expect-properties", "Name"]).unwrap();
        assert!(bad_spec
            .target()
            .unwrap_err()
            .starts_with("--expect-properties"));
    }
}

//! Corporate proxies: [`ProxyConfig`] (which destinations go through which proxy, read from
//! `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` the way curl and reqwest read them)
//! and [`ProxyConnector`], the TCP connector of [`Client`](crate::Client) and of
//! `bulwark proxy`'s upstream that opens an HTTP `CONNECT` tunnel through the proxy when the
//! configuration says so, and connects directly otherwise.
//!
//! The matching rules are hyper-util's (`client::proxy::matcher::Matcher`: curl's `NO_PROXY`
//! rules, credentials from the URL); this module adds the validation of explicit settings and
//! the `CONNECT` handshake (40 lines). hyper-util's own `Tunnel` is not used: its error type
//! cannot be named outside hyper-util, it drops the status of a refusal other than 407, and it
//! assumes port 443 for every destination. Errors name the proxy without its credentials. A
//! connect returns a boxed future: it runs once per new connection, not once per request.
//!
//! Every destination that goes through a proxy is tunnelled, plain `http://` ones too (what
//! curl does with `--proxytunnel`): the proxy sees `CONNECT host:port` and the credentials,
//! never a request, and the credentials work for both schemes. A proxy that only allows
//! `CONNECT` to port 443 refuses plain-HTTP destinations: list those in `NO_PROXY`.

mod config;
mod connector;

pub use config::{ProxyConfig, ProxyConfigBuilder};
pub use connector::{Connecting, ProxyConnector, ProxyError};

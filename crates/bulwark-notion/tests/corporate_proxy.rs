//! Behind a corporate proxy: the ready `Client` reaches an HTTPS upstream (FakeNotion behind a
//! TLS terminator whose certificate a test CA signed) through a local `CONNECT` proxy that
//! checks `Proxy-Authorization`; `NO_PROXY` hosts bypass it; wrong credentials fail with a
//! clear 407 that never quotes the password. Everything runs on loopback, with wall-clock
//! timeouts so that a failure cannot hang the suite.

use std::{
    error::Error as StdError,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bulwark_notion::{Client, Error, ProxyConfig, ProxyError};
use bulwark_testkit::FakeNotion;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::timeout,
};
use tokio_rustls::TlsAcceptor;

const TOKEN: &str = "secret_corporate_proxy";
const USER: &str = "alice";
const PASSWORD: &str = "pw-Kx81q-right";
const WRONG_PASSWORD: &str = "pw-Zt47w-wrong";
/// How long any one step may take before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);
/// At most this many connections are served by each helper server.
const MAX_CONNECTIONS: usize = 32;

/// FakeNotion behind TLS for `localhost` and `127.0.0.1`, and the PEM of the CA that signed it.
struct Upstream {
    fake: FakeNotion,
    tls_port: u16,
    ca_pem: String,
}

async fn upstream() -> Upstream {
    let fake = FakeNotion::start().await.unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = listener.local_addr().unwrap().port();
    let fake_addr = fake.addr();
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) = timeout(LIMIT, acceptor.accept(tcp)).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(fake_addr).await else {
                    return;
                };
                let _ = timeout(LIMIT, tokio::io::copy_bidirectional(&mut tls, &mut plain)).await;
            });
        }
    });
    Upstream {
        fake,
        tls_port,
        ca_pem: ca.pem(),
    }
}

/// What the `CONNECT` proxy saw.
#[derive(Debug, Default)]
struct Seen {
    /// `host:port` of each tunnel it opened.
    tunnels: Vec<String>,
    /// `host:port` of each `CONNECT` it refused with 407.
    refused: Vec<String>,
}

/// A `CONNECT` proxy on loopback that wants `Proxy-Authorization: Basic alice:PASSWORD`
/// (answering 407 otherwise) and tunnels every `host:port` to `127.0.0.1:port` — the proxy,
/// not the client, resolves the name, as a real one does.
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let expected = format!(
        "proxy-authorization: basic {}",
        base64(&format!("{USER}:{PASSWORD}"))
    )
    .to_ascii_lowercase();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (seen, expected) = (Arc::clone(&record), expected.clone());
            tokio::spawn(async move {
                let _ = timeout(LIMIT, serve_connect(tcp, seen, expected)).await;
            });
        }
    });
    (addr, seen)
}

async fn serve_connect(mut tcp: TcpStream, seen: Arc<Mutex<Seen>>, expected: String) {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    // One byte at a time: nothing past the head is consumed (the TLS hello follows it).
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request = lines.next().unwrap_or_default();
    let Some(target) = request
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
    else {
        let _ = tcp
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    };
    let target = target.to_owned();
    if !lines.any(|line| line.to_ascii_lowercase() == expected) {
        seen.lock().unwrap().refused.push(target);
        let _ = tcp
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let Some(port) = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
        let _ = tcp.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    seen.lock().unwrap().tunnels.push(target);
    if tcp
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
}

/// Standard base64 with padding, for the expected `Proxy-Authorization`.
fn base64(input: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn client(base_url: String, ca_pem: &str, proxy: ProxyConfig) -> Client {
    Client::builder(TOKEN)
        .base_url(base_url)
        .add_root_certificates_pem(ca_pem)
        .proxy(proxy)
        // A refused tunnel is a connect failure, retried like any: not here.
        .preset(|p| p.retry(|r| r.max_retries(0)))
        .build()
        .unwrap()
}

fn users_me_requests(fake: &FakeNotion) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.path == "/v1/users/me")
        .count()
}

#[tokio::test]
async fn the_client_reaches_https_notion_through_an_authenticating_connect_proxy() {
    let up = upstream().await;
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxyConfig::all(format!("http://{USER}:{PASSWORD}@{proxy_addr}")).unwrap();
    let notion = client(
        format!("https://localhost:{}", up.tls_port),
        &up.ca_pem,
        proxy,
    );

    let me = timeout(LIMIT, notion.get("users/me", json!({})))
        .await
        .expect("no answer in time")
        .expect("users/me through the tunnel");
    assert_eq!(me["object"], "user");
    assert_eq!(users_me_requests(&up.fake), 1, "FakeNotion saw the request");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.tunnels, [format!("localhost:{}", up.tls_port)]);
    assert!(seen.refused.is_empty(), "{seen:?}");
    let shown = format!("{notion:?}");
    assert!(shown.contains(&proxy_addr.to_string()), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
}

/// The settings the environment gives (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), through the
/// same builder `ProxyConfig::from_env` fills — no process environment is changed.
#[tokio::test]
async fn env_style_settings_tunnel_https_and_no_proxy_hosts_bypass_the_proxy() {
    let up = upstream().await;
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxyConfig::builder()
        .https(format!("{USER}:{PASSWORD}@{proxy_addr}"))
        .http(format!("http://{USER}:{PASSWORD}@{proxy_addr}"))
        .no_proxy("127.0.0.1, .internal.example")
        .build()
        .unwrap();

    // `localhost` is not in NO_PROXY: through the tunnel.
    let tunnelled = client(
        format!("https://localhost:{}", up.tls_port),
        &up.ca_pem,
        proxy.clone(),
    );
    timeout(LIMIT, tunnelled.get("users/me", json!({})))
        .await
        .unwrap()
        .expect("through the proxy");
    assert_eq!(seen.lock().unwrap().tunnels.len(), 1);

    // `127.0.0.1` is: straight to the TLS terminator, the proxy sees nothing.
    let direct = client(
        format!("https://127.0.0.1:{}", up.tls_port),
        &up.ca_pem,
        proxy.clone(),
    );
    timeout(LIMIT, direct.get("users/me", json!({})))
        .await
        .unwrap()
        .expect("directly");
    assert_eq!(
        seen.lock().unwrap().tunnels.len(),
        1,
        "NO_PROXY bypassed the proxy"
    );
    assert_eq!(users_me_requests(&up.fake), 2);

    // Plain http:// destinations are tunnelled too, to their own port.
    let plain = client(
        format!("http://localhost:{}", up.fake.addr().port()),
        &up.ca_pem,
        proxy,
    );
    timeout(LIMIT, plain.get("users/me", json!({})))
        .await
        .unwrap()
        .expect("plain HTTP through the proxy");
    assert_eq!(
        seen.lock().unwrap().tunnels.last().unwrap(),
        &format!("localhost:{}", up.fake.addr().port())
    );
    assert_eq!(users_me_requests(&up.fake), 3);
}

#[tokio::test]
async fn no_proxy_for_the_host_means_no_tunnel_at_all() {
    let up = upstream().await;
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxyConfig::builder()
        .all(format!("http://{USER}:{PASSWORD}@{proxy_addr}"))
        .no_proxy("localhost")
        .build()
        .unwrap();
    let notion = client(
        format!("https://localhost:{}", up.tls_port),
        &up.ca_pem,
        proxy,
    );
    timeout(LIMIT, notion.get("users/me", json!({})))
        .await
        .unwrap()
        .expect("directly");
    let seen = seen.lock().unwrap();
    assert!(
        seen.tunnels.is_empty() && seen.refused.is_empty(),
        "{seen:?}"
    );
    assert_eq!(users_me_requests(&up.fake), 1);

    // And `no_proxy()` on the builder: direct whatever the settings.
    let direct = Client::builder(TOKEN)
        .base_url(format!("https://localhost:{}", up.tls_port))
        .add_root_certificates_pem(up.ca_pem.as_str())
        .no_proxy()
        .build()
        .unwrap();
    assert!(direct.proxy().is_none());
}

#[tokio::test]
async fn wrong_proxy_credentials_fail_with_407_and_never_show_the_password() {
    let up = upstream().await;
    let (proxy_addr, seen) = connect_proxy().await;
    let proxy = ProxyConfig::all(format!("http://{USER}:{WRONG_PASSWORD}@{proxy_addr}")).unwrap();
    let builder = Client::builder(TOKEN)
        .base_url(format!("https://localhost:{}", up.tls_port))
        .add_root_certificates_pem(up.ca_pem.as_str())
        .proxy(proxy)
        .preset(|p| p.retry(|r| r.max_retries(0)));
    assert!(!format!("{builder:?}").contains(WRONG_PASSWORD));
    let notion = builder.build().unwrap();
    assert!(!format!("{notion:?}").contains(WRONG_PASSWORD));

    let err = timeout(LIMIT, notion.get("users/me", json!({})))
        .await
        .expect("no answer in time")
        .expect_err("the proxy refuses the credentials");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    let mut chain = Vec::new();
    let mut proxy_error = None;
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    for _ in 0..16 {
        let Some(e) = source else { break };
        chain.push(e.to_string());
        proxy_error = proxy_error.or_else(|| e.downcast_ref::<ProxyError>());
        source = e.source();
    }
    let chain = chain.join(": ");
    let proxy_error = proxy_error.unwrap_or_else(|| panic!("no ProxyError in {chain}"));
    assert!(proxy_error.is_auth_required());
    assert_eq!(proxy_error.status(), Some(407));
    assert_eq!(
        proxy_error.proxy().to_string(),
        format!("http://{proxy_addr}/")
    );
    assert!(
        chain.contains("407 Proxy Authentication Required"),
        "{chain}"
    );
    assert!(!chain.contains(WRONG_PASSWORD), "{chain}");
    assert!(!format!("{err:?}").contains(WRONG_PASSWORD));
    assert_eq!(seen.lock().unwrap().refused.len(), 1);
    assert_eq!(users_me_requests(&up.fake), 0, "never reached Notion");
}

#[tokio::test]
async fn an_unreachable_proxy_is_named_without_its_credentials() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = ProxyConfig::all(format!("http://{USER}:{PASSWORD}@{addr}")).unwrap();
    let notion = Client::builder(TOKEN)
        .base_url("https://localhost:9")
        .proxy(proxy)
        .preset(|p| p.retry(|r| r.max_retries(0)))
        .build()
        .unwrap();
    let err = timeout(LIMIT, notion.get("users/me", json!({})))
        .await
        .unwrap()
        .unwrap_err();
    let mut found = false;
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    for _ in 0..16 {
        let Some(e) = source else { break };
        assert!(!e.to_string().contains(PASSWORD));
        if let Some(proxy_error) = e.downcast_ref::<ProxyError>() {
            assert!(proxy_error.is_unreachable(), "{proxy_error}");
            found = true;
        }
        source = e.source();
    }
    assert!(found, "{err:?}");
}

#[test]
fn root_certificates_that_are_not_pem_are_refused() {
    let err = Client::builder(TOKEN)
        .add_root_certificates_pem("not a certificate")
        .no_proxy()
        .build()
        .unwrap_err();
    assert_eq!(err.field(), "root_certificates_pem");
}

#[test]
fn the_test_base64_is_standard() {
    assert_eq!(base64("Aladdin:opensesame"), "QWxhZGRpbjpvcGVuc2VzYW1l");
    assert_eq!(base64("a"), "YQ==");
    assert_eq!(base64("ab"), "YWI=");
}

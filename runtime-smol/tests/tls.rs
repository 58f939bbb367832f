//! TLS on both listeners, with a certificate made at test time.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use toolwire_smol::client::{Client, ClientOptions};
use toolwire_smol::gateway::CallOptions;
use toolwire_smol::node::{HostNode, NodeOptions, SessionEnd};
use toolwire_smol::{Endpoint, Gateway, GatewayConfig, tls};

#[test]
fn wss_and_tls_listeners() {
    smol::block_on(async {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_pem = cert.cert.pem();
        let key_pem = cert.signing_key.serialize_pem();
        let server = tls::server_config_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let client_tls = tls::client_config_pem(cert_pem.as_bytes()).unwrap();

        let gw = Gateway::new(GatewayConfig::default());
        let wss = gw
            .listen(
                &Endpoint::parse("wss://127.0.0.1:0").unwrap(),
                Some(server.clone()),
            )
            .await
            .unwrap();
        let tcp = gw
            .listen(&Endpoint::parse("tls://127.0.0.1:0").unwrap(), Some(server))
            .await
            .unwrap();
        let wss_url = format!("wss://localhost:{}", wss.addr.port());
        let tls_url = format!("tls://localhost:{}", tcp.addr.port());

        let mut a = NodeOptions::new("over-wss");
        a.tls = Some(client_tls.clone());
        let _a = spawn_device(&wss_url, a);
        let mut b = NodeOptions::new("over-tls");
        b.tls = Some(client_tls.clone());
        let _b = spawn_device(&tls_url, b);
        assert!(gw.wait_for_node("over-wss", Duration::from_secs(10)).await);
        assert!(gw.wait_for_node("over-tls", Duration::from_secs(10)).await);
        for node in ["over-wss", "over-tls"] {
            let r = gw
                .call(
                    node,
                    "echo",
                    &json!({"text": "secret"}),
                    CallOptions::default(),
                )
                .await
                .unwrap();
            assert_eq!(r["text"], "secret");
        }
        // A controller over TLS.
        let opts = ClientOptions {
            tls: Some(client_tls.clone()),
            ..Default::default()
        };
        let client = Client::connect(&Endpoint::parse(&tls_url).unwrap(), opts)
            .await
            .unwrap();
        assert_eq!(client.nodes().await.unwrap().len(), 2);

        // The REST API on the wss:// port, over HTTPS with the same certificate.
        let tcp_stream = smol::net::TcpStream::connect(wss.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut https = futures_rustls::TlsConnector::from(client_tls.clone())
            .connect(name, tcp_stream)
            .await
            .unwrap();
        use smol::io::{AsyncReadExt, AsyncWriteExt};
        https
            .write_all(b"GET /v1/nodes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        https.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains(r#""id":"over-tls""#), "{reply}");

        // A peer that does not trust the certificate cannot connect.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let mut c = NodeOptions::new("untrusting");
        c.tls = Some(tls::client_config_pem(other.cert.pem().as_bytes()).unwrap());
        let end = HostNode::new(c)
            .run_once(&Endpoint::parse(&wss_url).unwrap(), None)
            .await;
        assert!(
            matches!(end, SessionEnd::Lost(ref e) if e.contains("certificate")),
            "{end:?}"
        );
        // Plain TCP to a TLS listener is not a protocol peer either.
        let end = HostNode::new(NodeOptions::new("plain"))
            .run_once(
                &Endpoint::parse(&format!("tcp://127.0.0.1:{}", tcp.addr.port())).unwrap(),
                None,
            )
            .await;
        assert!(
            matches!(end, SessionEnd::Lost(_) | SessionEnd::Timeout),
            "{end:?}"
        );
    });
}

//! Tokens: missing, expired, forged and out-of-scope, on the native
//! endpoint, the compliance endpoint (close 1008) and the publish API.

use std::time::Duration;

use riskwatch::ConnState;
use riskwatch::client::{Client, Notice, StopReason, Token};
use riskwatch::server::auth::mint_hs256;
use riskwatch::server::{Auth, Claims, NewEvent, ServerConfig};
use serde_json::json;

use super::support::*;

fn claims(user: &str, channels: &[&str], publish: bool, ttl: i64) -> Claims {
    Claims {
        sub: user.into(),
        role: Some("trader".into()),
        channels: channels.iter().map(|s| s.to_string()).collect(),
        publish,
        msp: None,
        client: None,
        exp: (chrono::Utc::now().timestamp() + ttl) as u64,
        iat: None,
    }
}

fn token(c: &Claims) -> Token {
    Token::new(mint_hs256(SECRET, c).unwrap())
}

async fn secure_hub() -> riskwatch::server::Server {
    hub(ServerConfig::new(Auth::hs256(SECRET).unwrap())).await
}

async fn refused(url: String, t: Option<Token>) -> String {
    let mut c = Client::connect(fast(url).token(t)).unwrap();
    match stopped(&mut c, Duration::from_secs(10)).await {
        ConnState::Stopped {
            reason: StopReason::AuthRefused(d),
        } => d,
        other => panic!("expected an auth refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_expired_and_forged_tokens_stop_the_client() {
    let hub = secure_hub().await;
    let u = url(hub.addr(), "/api/v1/stream");
    let d = refused(u.clone(), None).await;
    assert!(d.contains("401"), "{d}");
    let expired = claims("u1", &["user:u1"], false, -3600);
    refused(u.clone(), Some(token(&expired))).await;
    let forged = Token::new(
        mint_hs256(
            b"not-the-hub-secret-not-the-hub-secret",
            &claims("u1", &["*"], true, 3600),
        )
        .unwrap(),
    );
    let d = refused(u.clone(), Some(forged.clone())).await;
    assert!(
        !d.contains(forged.expose()),
        "the token must not appear in errors"
    );
    assert_eq!(hub.hub().stats().total_connections, 0);
    assert!(hub.hub().stats().rejected_auth >= 3);
    hub.shutdown().await;
}

#[tokio::test]
async fn compliance_endpoint_refuses_with_close_1008() {
    let hub = secure_hub().await;
    let d = refused(url(hub.addr(), "/ws/engagement"), None).await;
    assert!(d.contains("1008"), "{d}");
    hub.shutdown().await;
}

#[tokio::test]
async fn out_of_scope_channels_get_an_error_and_no_data() {
    let hub = secure_hub().await;
    let t = token(&claims("u1", &["user:u1"], false, 3600));
    let mut c = Client::connect(
        fast(url(hub.addr(), "/api/v1/stream"))
            .token(Some(t))
            .subscribe("user:u1")
            .subscribe("user:u2"),
    )
    .unwrap();
    match next_notice(&mut c, Duration::from_secs(5)).await {
        Some(Notice::ServerError { code, message }) => {
            assert_eq!(code, "forbidden");
            assert!(message.contains("user:u2"), "{message}");
        }
        other => panic!("expected a forbidden notice, got {other:?}"),
    }
    let h = hub.hub();
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("user:u1")
            == Some(&1))
        .await
    );
    let ev = |ch: &str, n: u64| -> NewEvent {
        serde_json::from_value(json!({"channel": ch, "type": "risk_alert", "data": {"n": n}}))
            .unwrap()
    };
    h.publish(ev("user:u2", 1)).await.unwrap();
    h.publish(ev("user:u1", 2)).await.unwrap();
    let e = next_event(&mut c, Duration::from_secs(5))
        .await
        .expect("own channel delivers");
    assert_eq!(e.channel.as_deref(), Some("user:u1"));
    assert_eq!(e.field("n"), Some(json!(2)));
    assert!(
        next_event(&mut c, Duration::from_millis(300))
            .await
            .is_none()
    );
    assert!(!h.stats().connections_by_channel.contains_key("user:u2"));
    hub.shutdown().await;
}

#[tokio::test]
async fn publishing_needs_the_publish_scope() {
    let hub = secure_hub().await;
    let http = http_client();
    let api = format!("http://{}/api/v1/publish", hub.addr());
    let body =
        json!({"channel": "user:u1", "type": "risk_alert", "data": {"alertLevel": "critical"}});
    let r = http.post(&api).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let reader = mint_hs256(SECRET, &claims("u1", &["user:u1"], false, 3600)).unwrap();
    let r = http
        .post(&api)
        .bearer_auth(&reader)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let publisher = mint_hs256(SECRET, &claims("svc", &[], true, 3600)).unwrap();
    let r = http
        .post(&api)
        .bearer_auth(&publisher)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["seq"], 1);
    // Stats and metrics need a token too.
    let stats = format!("http://{}/api/v1/ws/stats", hub.addr());
    assert_eq!(http.get(&stats).send().await.unwrap().status(), 401);
    assert_eq!(
        http.get(&stats)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let health = format!("http://{}/healthz", hub.addr());
    assert_eq!(http.get(&health).send().await.unwrap().status(), 200);
    hub.shutdown().await;
}

/// A user who comes back in a new client process (no position of its own)
/// gets what it missed on its `user:` channel: the hub remembers where the
/// user left and replays from there, and the client takes the replay as
/// new (the acknowledgement carries the position it continues after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_user_in_a_new_process_gets_what_it_missed() {
    let hub = secure_hub().await;
    let h = std::sync::Arc::clone(hub.hub());
    let t = token(&claims("u1", &["user:u1"], false, 3600));
    let u = url(hub.addr(), "/api/v1/stream");
    let publish = async |i: u64, severity: &str| {
        let ev: NewEvent = serde_json::from_value(json!({"channel": "user:u1",
            "type": "alert", "severity": severity, "data": {"i": i}}))
        .unwrap();
        h.publish(ev).await.unwrap();
    };
    let mut first =
        Client::connect(fast(u.clone()).token(Some(t.clone())).subscribe("user:u1")).unwrap();
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .get("user:u1")
            == Some(&1))
        .await
    );
    for i in 1..=3 {
        publish(i, "info").await;
    }
    for i in 1..=3 {
        assert_eq!(
            next_event(&mut first, Duration::from_secs(5))
                .await
                .unwrap()
                .seq,
            Some(i)
        );
    }
    // Known received (acknowledged by TCP, or a ping answered): a new
    // process is not replayed it again.
    let proven = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let at = h.starting_points("u1", None).await;
            if at.get("user:u1").is_some_and(|c| c.seq >= 3) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(proven.is_ok(), "delivery to the first process never proven");
    first.shutdown();
    drop(first);
    assert!(until(Duration::from_secs(5), || h.stats().total_connections == 0).await);
    publish(4, "info").await;
    publish(5, "critical").await;
    publish(6, "info").await;

    let mut second = Client::connect(fast(u).token(Some(t)).subscribe("user:u1")).unwrap();
    for i in 4..=6 {
        let e = next_event(&mut second, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("missed {i}"));
        assert_eq!((e.seq, e.field("i")), (Some(i), Some(json!(i))));
    }
    assert!(
        next_event(&mut second, Duration::from_millis(300))
            .await
            .is_none()
    );
    hub.shutdown().await;
}

/// A token valid only from an hour ahead is refused at the upgrade (the
/// client stops and says so), not admitted early.
#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let hub = secure_hub().await;
    let now = chrono::Utc::now().timestamp();
    let early = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "u1", "exp": now + 7200, "nbf": now + 3600, "channels": ["user:u1"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let d = refused(url(hub.addr(), "/api/v1/stream"), Some(Token::new(early))).await;
    assert!(d.contains("401"), "{d}");
    hub.shutdown().await;
}

/// Stats are tenant-private: a user sees its own channels, user, client
/// and MSP, never another tenant's; an operator (`*`) sees everything;
/// metrics are for operators only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_a_tenant_only_its_own() {
    let hub = secure_hub().await;
    let h = std::sync::Arc::clone(hub.hub());
    let u = url(hub.addr(), "/api/v1/stream");
    let tenant = |user: &str, msp: &str, client: &str, ch: &str| Claims {
        sub: user.into(),
        role: Some("client_user".into()),
        channels: vec![ch.into()],
        publish: false,
        msp: Some(msp.into()),
        client: Some(client.into()),
        exp: (chrono::Utc::now().timestamp() + 3600) as u64,
        iat: None,
    };
    let alice = tenant("alice", "m1", "c1", "msp:m1/client:c1");
    let bob = tenant("bob", "m2", "c2", "msp:m2/client:c2");
    let _a = Client::connect(
        fast(u.clone())
            .token(Some(token(&alice)))
            .subscribe("msp:m1/client:c1"),
    )
    .unwrap();
    let _b = Client::connect(
        fast(u)
            .token(Some(token(&bob)))
            .subscribe("msp:m2/client:c2"),
    )
    .unwrap();
    assert!(
        until(Duration::from_secs(5), || h
            .stats()
            .connections_by_channel
            .len()
            == 2)
        .await
    );
    let http = http_client();
    let get = |path: &str, t: String| {
        let (http, url) = (http.clone(), format!("http://{}{path}", hub.addr()));
        async move { http.get(url).bearer_auth(t).send().await.unwrap() }
    };
    let seen: serde_json::Value = get("/api/v1/ws/stats", mint_hs256(SECRET, &alice).unwrap())
        .await
        .json()
        .await
        .unwrap();
    let text = seen.to_string();
    for other in ["bob", "m2", "c2"] {
        assert!(!text.contains(other), "{other} visible to alice: {text}");
    }
    assert_eq!(seen["connections_by_user"]["alice"], 1);
    assert_eq!(seen["connections_by_channel"]["msp:m1/client:c1"], 1);
    let ops = mint_hs256(SECRET, &claims("ops", &["*"], false, 3600)).unwrap();
    let all: serde_json::Value = get("/api/v1/ws/stats", ops.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total_connections"], 2);
    assert_eq!(all["msp_connections"]["m2"], 1);
    assert!(
        seen.get("heap").is_none(),
        "the process's heap is hub-wide: {seen}"
    );
    let alice_token = mint_hs256(SECRET, &alice).unwrap();
    assert_eq!(get("/metrics", alice_token).await.status(), 403);
    let metrics = get("/metrics", ops).await;
    assert_eq!(metrics.status(), 200);
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        let in_use = all["heap"]["in_use_bytes"]
            .as_u64()
            .expect("the heap, for operators");
        assert!(
            in_use > 0 && all["heap"]["held_bytes"].as_u64().unwrap() >= in_use,
            "{all}"
        );
        let text = metrics.text().await.unwrap();
        assert!(text.contains("riskwatch_hub_heap_in_use_bytes "), "{text}");
        assert!(text.contains("riskwatch_hub_heap_held_bytes "), "{text}");
    }
    hub.shutdown().await;
}

/// A token as seed 002's auth service issues it — `role`, `msp_id`,
/// `client_id`, no `channels` claim — scopes the compliance endpoints by
/// role: an MSP user sees every client of its MSP and no other's (another
/// MSP's client endpoint and `subscribe` are refused, not silently
/// empty), a client user its own client; the greeting leaves unknown
/// optional fields out rather than sending null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_002_tokens_are_scoped_by_role() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let hub = secure_hub().await;
    let h = std::sync::Arc::clone(hub.hub());
    let seed_token = |role: &str, msp: Option<&str>, client: Option<&str>| {
        let mut c = json!({"sub": format!("{role}-user"), "role": role,
            "exp": chrono::Utc::now().timestamp() + 3600});
        if let Some(m) = msp {
            c["msp_id"] = json!(m);
        }
        if let Some(cl) = client {
            c["client_id"] = json!(cl);
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    };
    let publish = async |ch: &str, n: u64| {
        let e: NewEvent = serde_json::from_value(json!({"channel": ch,
            "type": "engagement_update", "data": {"n": n}}))
        .unwrap();
        h.publish(e).await.unwrap();
    };
    // Both MSPs' clients are known to the hub.
    publish("msp:m1/client:c1", 0).await;
    publish("msp:m2/client:c9", 0).await;
    let open = async |path: &str, t: &str| {
        let u = format!("ws://{}{path}?token={t}", hub.addr());
        tokio_tungstenite::connect_async(u.as_str())
            .await
            .unwrap()
            .0
    };
    // The next text frame, parsed.
    async fn next(
        ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    ) -> Option<serde_json::Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Some(
                        json!({"closed": f.map(|f| (u16::from(f.code), f.reason.to_string()))}),
                    );
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    let admin = seed_token("msp_admin", Some("m1"), None);
    let mut ws = open("/ws/engagement", &admin).await;
    let hello = next(&mut ws).await.unwrap();
    assert_eq!(hello["scope"], "msp");
    assert_eq!(hello["user_role"], "msp_admin");
    assert!(
        hello.get("client_id").is_none(),
        "left out, not null: {hello}"
    );
    subscriptions(&h, 1).await;
    publish("msp:m2/client:c9", 1).await;
    publish("msp:m1/client:c1", 2).await;
    let got = next(&mut ws).await.unwrap();
    assert_eq!(
        (got["client_id"].clone(), got["data"]["n"].clone()),
        (json!("c1"), json!(2))
    );
    // Subscribing to another MSP's client is refused.
    ws.send(Message::text(
        json!({"type": "subscribe", "client_id": "c9"}).to_string(),
    ))
    .await
    .unwrap();
    let reply = next(&mut ws).await.unwrap();
    assert_eq!(reply["type"], "error", "{reply}");

    // Another MSP's client endpoint: closed with 1008 and a reason.
    let user = seed_token("msp_user", Some("m1"), None);
    let mut other = open("/ws/client/c9/engagement", &user).await;
    let mut closed = None;
    while let Some(v) = next(&mut other).await {
        if v.get("closed").is_some() {
            closed = Some(v);
            break;
        }
    }
    let closed = closed.expect("closed");
    assert_eq!(closed["closed"][0], 1008);
    assert!(
        closed["closed"][1].as_str().unwrap().contains("c9"),
        "{closed}"
    );

    // A client user: its own client only.
    let cu = seed_token("client_user", Some("m1"), Some("c1"));
    let mut own = open("/ws/engagement", &cu).await;
    let hello = next(&mut own).await.unwrap();
    assert_eq!(
        (hello["scope"].clone(), hello["client_id"].clone()),
        (json!("client"), json!("c1"))
    );
    assert!(
        until(Duration::from_secs(5), || {
            h.stats()
                .connections_by_user
                .contains_key("client_user-user")
        })
        .await
    );
    publish("msp:m1/client:c2", 3).await;
    publish("msp:m1/client:c1", 4).await;
    let got = next(&mut own).await.unwrap();
    assert_eq!(got["data"]["n"], 4, "{got}");

    // A role without the ids it needs reads nothing, and is told so.
    let bare = seed_token("client_user", None, Some("c1"));
    let mut none = open("/ws/engagement", &bare).await;
    let mut reason = None;
    while let Some(v) = next(&mut none).await {
        if let Some(c) = v.get("closed") {
            reason = Some(c.clone());
            break;
        }
    }
    assert_eq!(reason.expect("closed")[0], 1008);
    hub.shutdown().await;
}

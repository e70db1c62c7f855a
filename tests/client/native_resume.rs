//! The native protocol across drops: 10,000 messages arrive exactly once and
//! in order while the hub resets the connection every ~1,500 messages; a
//! sloppy hub's re-sent messages are filtered; a resume position older than
//! history, an epoch change and a silent hole are reported as gaps.

use std::time::Duration;

use riskwatch::client::{ClientUpdate, ConnState, Notice};
use riskwatch::{Severity, Style};

use crate::common::native::{CHANNEL, NativeServer};
use crate::common::{Rec, config, ms, wait_until, within};

const SECS: Duration = Duration::from_secs(10);

fn client(server: &NativeServer) -> Rec {
    Rec::connect(
        config(server.url())
            .subscribe(CHANNEL)
            .heartbeat(Duration::from_secs(5)),
    )
}

/// Reads updates until `n` events have arrived (within 30 s); returns
/// their sequences, checking each event's content on the way. Panics on any
/// notice.
async fn collect_seqs(rec: &mut Rec, n: usize) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            panic!(
                "only {} of {n} events within 30 s; stats {:?}",
                seqs.len(),
                rec.stats()
            );
        }
        match rec.next(left.min(SECS)).await {
            ClientUpdate::Event(e) => {
                let seq = e.seq.expect("native events carry seq");
                assert_eq!(e.channel.as_deref(), Some(CHANNEL));
                assert_eq!(e.kind, "risk_update");
                assert_eq!(e.style, Style::Native);
                let want = if seq % 500 == 0 {
                    Severity::Critical
                } else {
                    Severity::Info
                };
                assert_eq!(e.severity, want, "seq {seq}");
                assert_eq!(e.id.as_deref(), Some(format!("ev-{seq}").as_str()));
                let d = e.data();
                assert_eq!(d["n"], seq, "payload of seq {seq}");
                assert_eq!(d["text"], format!("msg-{seq}"));
                seqs.push(seq);
            }
            ClientUpdate::Notice(n) => {
                panic!("unexpected notice {n:?} after {} events", seqs.len())
            }
            ClientUpdate::State(_) => {}
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_across_drops_exactly_once_in_order() {
    within(45, async {
        let server = NativeServer::start("e1").await;
        server.set_drop_after(1500);
        let mut rec = client(&server);
        // Publish only once the client is subscribed (head 0), while the hub
        // keeps resetting connections.
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        let publisher = {
            let total = 10_000u64;
            let srv = &server;
            async move {
                let mut done = 0;
                while done < total {
                    srv.publish(100);
                    done += 100;
                    tokio::time::sleep(ms(2)).await;
                }
            }
        };
        let (seqs, ()) = tokio::join!(collect_seqs(&mut rec, 10_000), publisher);
        let want: Vec<u64> = (1..=10_000).collect();
        if seqs != want {
            let first_bad = seqs.iter().zip(&want).position(|(a, b)| a != b);
            panic!(
                "sequence broken at index {first_bad:?} (got {} events)",
                seqs.len()
            );
        }
        // Nothing more: no late duplicates.
        let extra = rec.drain_for(ms(300)).await;
        assert!(
            !extra.iter().any(|u| matches!(u, ClientUpdate::Event(_))),
            "extra events after 10,000: {extra:?}"
        );
        let st = rec.stats();
        assert_eq!(st.events, 10_000);
        assert_eq!(st.gaps, 0);
        let drops = server.connections() - 1;
        assert!(drops >= 5, "the hub dropped the connection {drops} times");
        assert_eq!(st.connects as usize, server.connections());
        // Every resume carried the position reached, in the right epoch.
        let subs = server.subscribes();
        assert_eq!(subs.len(), server.connections());
        assert!(
            subs[0].get("since").is_none(),
            "first subscribe has no position"
        );
        let mut last = 0;
        for s in &subs[1..] {
            assert_eq!(s["since"]["epoch"], "e1", "{s}");
            let seq = s["since"]["seq"].as_u64().expect("since.seq");
            assert!(
                seq >= last && seq > 0,
                "positions only move forward: {subs:?}"
            );
            last = seq;
        }
        let reconnects = rec
            .states()
            .iter()
            .filter(|s| matches!(s, ConnState::Reconnecting { .. }))
            .count();
        assert_eq!(reconnects, drops);
    })
    .await;
}

#[tokio::test]
async fn resent_messages_after_resume_are_dropped_as_duplicates() {
    within(30, async {
        let server = NativeServer::start("e1").await;
        server.set_drop_after(300);
        // A sloppy hub: every resume replays 10 messages the client has.
        server.set_overlap(10);
        let mut rec = client(&server);
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        server.publish(2_000);
        let seqs = collect_seqs(&mut rec, 2_000).await;
        assert_eq!(seqs, (1..=2_000).collect::<Vec<u64>>());
        let extra = rec.drain_for(ms(200)).await;
        assert!(!extra.iter().any(|u| matches!(u, ClientUpdate::Event(_))));
        let resumes = server.subscribes().len() as u64 - 1;
        assert!(resumes >= 5, "{resumes} resumes");
        assert_eq!(rec.stats().duplicates, 10 * resumes);
    })
    .await;
}

#[tokio::test]
async fn resume_older_than_history_reports_a_gap_then_continues_from_oldest() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        let mut rec = client(&server);
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        server.publish(5);
        assert_eq!(collect_seqs(&mut rec, 5).await, [1, 2, 3, 4, 5]);
        // While the client is away, 95 more are published and history
        // keeps only 50..=100.
        server.kick(|h| {
            h.publish(95);
            h.trim_before(50);
        });
        let mut order = Vec::new();
        let mut seqs = Vec::new();
        while seqs.len() < 51 {
            match rec.next(SECS).await {
                ClientUpdate::Event(e) => {
                    seqs.push(e.seq.unwrap());
                    order.push(format!("event {}", e.seq.unwrap()));
                }
                ClientUpdate::Notice(n) => {
                    assert_eq!(
                        n,
                        Notice::Gap {
                            channel: CHANNEL.into(),
                            requested: 5,
                            oldest: 50,
                            criticals_kept: false
                        }
                    );
                    order.push("gap".into());
                }
                ClientUpdate::State(_) => {}
            }
        }
        assert_eq!(seqs, (50..=100).collect::<Vec<u64>>());
        assert_eq!(order[0], "gap", "the gap is announced before event 50");
        assert_eq!(order.iter().filter(|o| *o == "gap").count(), 1);
        let subs = server.subscribes();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[1]["since"], serde_json::json!({"seq":5,"epoch":"e1"}));
        assert_eq!(rec.stats().gaps, 1);
        // Live delivery goes on after the gap.
        server.publish(3);
        assert_eq!(collect_seqs(&mut rec, 3).await, [101, 102, 103]);
    })
    .await;
}

#[tokio::test]
async fn epoch_change_restarts_sequences_without_losing_events() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        let mut rec = client(&server);
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        server.publish(8);
        assert_eq!(collect_seqs(&mut rec, 8).await, (1..=8).collect::<Vec<_>>());
        // The hub restarts without its history: a new epoch from seq 1.
        server.kick(|h| {
            h.new_epoch("e2");
            h.publish(3);
        });
        let mut seqs = Vec::new();
        while seqs.len() < 3 {
            match rec.next(SECS).await {
                ClientUpdate::Event(e) => seqs.push(e.seq.unwrap()),
                ClientUpdate::Notice(n) => assert_eq!(
                    n,
                    Notice::Gap {
                        channel: CHANNEL.into(),
                        requested: 8,
                        oldest: 1,
                        criticals_kept: false
                    }
                ),
                ClientUpdate::State(_) => {}
            }
        }
        // Sequences 1..=3 of the new epoch are new, not duplicates of the old.
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(rec.notices().len(), 1);
        assert_eq!(rec.stats().duplicates, 0);
        assert_eq!(server.subscribes()[1]["since"]["epoch"], "e1");
    })
    .await;
}

#[tokio::test]
async fn a_silent_hole_in_the_sequence_is_reported() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        let mut rec = client(&server);
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        server.with_history(|h| {
            h.publish(3);
            h.skip_one(); // seq 4 never sent
            h.publish(2);
        });
        let mut order = Vec::new();
        while order
            .iter()
            .filter(|o: &&String| o.starts_with("event"))
            .count()
            < 5
        {
            match rec.next(SECS).await {
                ClientUpdate::Event(e) => order.push(format!("event {}", e.seq.unwrap())),
                ClientUpdate::Notice(n) => {
                    assert_eq!(
                        n,
                        Notice::Gap {
                            channel: CHANNEL.into(),
                            requested: 3,
                            oldest: 5,
                            criticals_kept: false
                        }
                    );
                    order.push("gap".into());
                }
                ClientUpdate::State(_) => {}
            }
        }
        assert_eq!(
            order,
            ["event 1", "event 2", "event 3", "gap", "event 5", "event 6"]
        );
        assert_eq!(rec.stats().gaps, 1);
    })
    .await;
}

#[tokio::test]
async fn native_app_pings_are_answered_and_never_events() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        let mut rec = Rec::connect(config(server.url()).subscribe(CHANNEL).heartbeat(ms(150)));
        wait_until("three app pings", SECS, || server.app_pings() >= 3).await;
        let ups = rec.drain_for(ms(100)).await;
        assert!(
            !ups.iter().any(|u| matches!(u, ClientUpdate::Event(_))),
            "{ups:?}"
        );
        assert_eq!(rec.stats().dead, 0);
        assert_eq!(server.connections(), 1);
        // welcome + subscribed + pongs are all control messages.
        assert!(rec.stats().controls >= 5, "{:?}", rec.stats());
    })
    .await;
}

#[tokio::test]
async fn a_hub_on_an_unrecognised_path_is_recognised_by_its_welcome() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        server.set_drop_after(4);
        // A reset right after the 4th event would also destroy it in the
        // client's receive buffer, every time; let it be read first.
        server.set_drop_pause(ms(50));
        let url = server
            .url()
            .replace(riskwatch::protocol::native::PATH, "/custom/feed");
        let mut rec = Rec::connect(config(url).subscribe(CHANNEL));
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        server.publish(10);
        assert_eq!(
            collect_seqs(&mut rec, 10).await,
            (1..=10).collect::<Vec<_>>()
        );
        // It subscribed after the welcome, and resumed after each drop.
        let subs = server.subscribes();
        assert!(subs.len() >= 3, "{subs:?}");
        assert!(subs[0].get("since").is_none());
        let positions: Vec<u64> = subs[1..]
            .iter()
            .map(|s| s["since"]["seq"].as_u64().expect("resumes carry since"))
            .collect();
        // Each drop comes after 4 events; a reset may eat the last in flight.
        assert!((1..=4).contains(&positions[0]), "{positions:?}");
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    })
    .await;
}

#[tokio::test]
async fn runtime_subscribe_refused_by_the_hub_is_a_server_error_notice() {
    within(20, async {
        let server = NativeServer::start("e1").await;
        let mut rec = client(&server);
        wait_until("subscribed", SECS, || server.subscribed_sent() >= 1).await;
        rec.subscribe("secret:channel");
        let n = loop {
            if let ClientUpdate::Notice(n) = rec.next(SECS).await {
                break n;
            }
        };
        assert_eq!(
            n,
            Notice::ServerError {
                code: "forbidden".into(),
                message: "unknown channel".into()
            }
        );
        let subs = server.subscribes();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            subs[1],
            serde_json::json!({"op":"subscribe","channel":"secret:channel"})
        );
        // The connection goes on: events on the good channel still arrive.
        server.publish(2);
        assert_eq!(collect_seqs(&mut rec, 2).await, [1, 2]);
        assert_eq!(server.connections(), 1);
    })
    .await;
}

/// A text frame that is not UTF-8 fails the connection as RFC 6455 asks
/// (close 1007, counted as malformed), and the resume on the next
/// connection recovers the event the server sent after it: nothing lost,
/// nothing twice.
#[tokio::test]
async fn a_frame_that_is_not_utf8_closes_with_1007_and_resume_loses_nothing() {
    use crate::common::native::event_json;
    use crate::common::{Got, Server};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    within(20, async {
        let server = Server::start(|mut c| async move {
            // Wait for the subscribe; then the stream from where it resumes.
            let mut since = 0;
            for _ in 0..50 {
                c.pump(ms(20)).await;
                if let Some(s) = c
                    .texts()
                    .iter()
                    .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                    .find(|v| v["op"] == "subscribe")
                {
                    since = s["since"]["seq"].as_u64().unwrap_or(0);
                    break;
                }
            }
            let ack =
                serde_json::json!({"op":"subscribed","channel":CHANNEL,"epoch":"e1","seq":since});
            c.send(ack.to_string()).await;
            if c.index == 0 {
                c.send(event_json(CHANNEL, 1)).await;
                let bad =
                    Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
                c.send_msg(Message::Frame(bad)).await;
                c.send(event_json(CHANNEL, 2)).await;
            } else {
                for seq in since + 1..=2 {
                    c.send(event_json(CHANNEL, seq)).await;
                }
            }
            c.pump_until_closed(Duration::from_secs(15)).await;
        })
        .await;
        let mut rec =
            Rec::connect(config(server.url(riskwatch::protocol::native::PATH)).subscribe(CHANNEL));
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            if let ClientUpdate::Event(e) = rec.next(SECS).await {
                seqs.push(e.seq.unwrap());
            }
        }
        assert_eq!(seqs, [1, 2], "once each, in order");
        assert!(
            rec.try_next(ms(300))
                .await
                .is_none_or(|u| !matches!(u, ClientUpdate::Event(_)))
        );
        wait_until("the 1007 close reached the server", SECS, || {
            server
                .received()
                .iter()
                .any(|(conn, g)| *conn == 0 && matches!(g, Got::Close(Some(1007))))
        })
        .await;
        let st = rec.stats();
        assert_eq!(st.connects, 2);
        assert_eq!(st.malformed, 1);
    })
    .await;
}

//! The post-condition of every bad-input test: the server is still up and still serves a
//! fresh, well-behaved client on both transports.

use crate::{Fixture, Mode};

impl Fixture {
    /// Asserts that a new client gets full service: a long-polling session and a WebSocket
    /// session each complete a round trip (an echo in `engineio` mode, `message` →
    /// `message-back` in the Socket.IO modes).
    ///
    /// # Panics
    ///
    /// When the server has exited or any step fails.
    pub async fn assert_serves_fresh_client(&mut self) {
        self.assert_alive();
        match self.mode() {
            Mode::EngineIo => {
                self.assert_polling_echo().await;
                self.assert_ws_echo().await;
            }
            Mode::SocketIo | Mode::Cluster => {
                self.assert_polling_socketio().await;
                self.assert_ws_socketio().await;
            }
        }
    }

    /// Engine.IO echo over long-polling.
    async fn assert_polling_echo(&self) {
        let session = self.open_polling().await;
        let pushed = session
            .push("4fresh")
            .await
            .expect("POST from a fresh client");
        assert_eq!((pushed.status, pushed.text()), (200, "ok"), "fresh POST");
        let polled = session.poll().await.expect("GET from a fresh client");
        assert_eq!((polled.status, polled.text()), (200, "4fresh"), "fresh GET");
    }

    /// Engine.IO echo over WebSocket.
    async fn assert_ws_echo(&self) {
        let (mut ws, _open) = self.open_ws().await;
        ws.send_text("4fresh")
            .await
            .expect("send from a fresh client");
        assert_eq!(
            ws.recv_skipping_pings().await.text(),
            "4fresh",
            "fresh echo"
        );
        ws.close().await;
    }

    /// Socket.IO connection and event over long-polling. The event waits for the
    /// `CONNECT` reply, as official clients do (Node.js closes a session whose event
    /// overtakes its namespace connection).
    async fn assert_polling_socketio(&self) {
        let session = self.open_polling().await;
        let pushed = session.push("40").await.expect("POST from a fresh client");
        assert_eq!((pushed.status, pushed.text()), (200, "ok"), "fresh CONNECT");
        let connected = session.poll_packets(2).await;
        crate::sio::parse_connect(&connected[0], "/");
        assert_eq!(connected[1], r#"42["auth",{}]"#, "fresh auth event");
        let pushed = session.push(r#"42["message","fresh"]"#).await;
        assert_eq!(pushed.expect("POST from a fresh client").status, 200);
        let echo = session.poll_packets(1).await;
        assert_eq!(echo, [r#"42["message-back","fresh"]"#], "fresh echo");
    }

    /// Socket.IO connection and event over WebSocket.
    async fn assert_ws_socketio(&self) {
        let mut client = self.sio_connect().await;
        let ws = &mut client.ws;
        ws.send_text(r#"42["message","fresh"]"#)
            .await
            .expect("send from a fresh client");
        let echo = ws.recv_skipping_pings().await.text();
        assert_eq!(echo, r#"42["message-back","fresh"]"#, "fresh echo");
        client.ws.close().await;
    }
}

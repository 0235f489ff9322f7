//! One request from this broker to another broker's client listener (as registered in the
//! metadata image) and its decoded answer: how a node forwards what only the active controller
//! or the Raft leader can answer (DescribeQuorum, CreateTopics of an internal topic, and the
//! admin writes of [`super::forwarding`]). Kafka forwards in an Envelope (KIP-590), which Potok
//! does not have: the request goes as it came, at the client's version, on a new connection.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use potok_metadata::BrokerId;
use potok_protocol::messages::RequestHeader;
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Broker;

/// How one forwarded request is sent and bounded.
pub(crate) struct Forward<'a> {
    pub key: ApiKey,
    pub version: i16,
    pub client_id: &'a str,
    /// The largest answer read: a bound so that a confused peer cannot make this broker
    /// allocate without limit.
    pub max_answer: usize,
    /// The whole exchange: connect, send, the peer's work, the answer.
    pub timeout: Duration,
}

impl Forward<'_> {
    /// Sends `req` to broker `to` on a new connection and decodes its answer. Errors are text
    /// for the caller to put in its own error code's message.
    pub async fn call<Req: Encode, Resp: Decode>(
        &self,
        broker: &Broker,
        to: i32,
        req: &Req,
    ) -> Result<Resp, String> {
        let mut body = self.exchange(broker, to, req).await?;
        Resp::decode(&mut body, self.version).map_err(|e| e.to_string())
    }

    /// As [`Forward::call`] for a request of any API (`self.key`): the answer is decoded as
    /// that API's response at `self.version`, so it can be relayed to the client unchanged.
    pub async fn relay(&self, broker: &Broker, to: i32, req: &Request) -> Result<Response, String> {
        let mut body = self.exchange(broker, to, req).await?;
        Response::decode(self.key, &mut body, self.version).map_err(|e| e.to_string())
    }

    /// Sends one request frame carrying `req` and returns the answer's body (after the
    /// response header).
    async fn exchange<Req: Encode + ?Sized>(
        &self,
        broker: &Broker,
        to: i32,
        req: &Req,
    ) -> Result<Bytes, String> {
        let addr = broker
            .topics
            .broker_address(BrokerId(to))
            .map(|(host, port)| format!("{host}:{port}"))
            .ok_or_else(|| format!("broker {to} has no registered client listener"))?;
        let header = RequestHeader {
            request_api_key: self.key as i16,
            request_api_version: self.version,
            correlation_id: 1,
            client_id: Some(self.client_id.into()),
            ..Default::default()
        };
        let mut frame = BytesMut::new();
        encode_request_frame(&mut frame, &header, req).map_err(|e| e.to_string())?;
        let exchange = async {
            let mut s = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
            s.write_all(&frame).await.map_err(|e| e.to_string())?;
            let len = s.read_i32().await.map_err(|e| e.to_string())?;
            let len = usize::try_from(len).map_err(|_| "negative frame size".to_string())?;
            if !(4..=self.max_answer).contains(&len) {
                return Err(format!("implausible answer size {len}"));
            }
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            let mut b = Bytes::from(body);
            if b.get_i32() != 1 {
                return Err("the answer is for another request".into());
            }
            // A flexible response header carries a tagged-field count; none are defined.
            if self.key.response_header_version(self.version) >= 1
                && (b.is_empty() || b.get_u8() != 0)
            {
                return Err("unexpected tagged fields in the answer's header".into());
            }
            Ok(b)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{addr} did not answer in time"))?
    }
}

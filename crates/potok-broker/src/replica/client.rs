//! The follower's connection to a leader's client listener: one request in flight, Kafka's
//! framing, bounded response size, every read and write under a timeout.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use potok_protocol::messages::{RequestHeader, ResponseHeader};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a request to the leader failed (the fetcher backs off and reconnects).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("response of {0} bytes is over the bound")]
    TooLarge(usize),
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// One connection to a leader.
#[derive(Debug)]
pub struct LeaderConnection {
    stream: TcpStream,
    correlation_id: i32,
    client_id: String,
    max_response_bytes: usize,
}

impl LeaderConnection {
    /// Connects to `host:port` within `timeout`. Responses larger than `max_response_bytes` end
    /// the connection before anything is allocated for them.
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        max_response_bytes: usize,
        timeout: Duration,
    ) -> Result<LeaderConnection, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(LeaderConnection {
            stream,
            correlation_id: 0,
            client_id,
            max_response_bytes,
        })
    }

    /// Sends `body` as `key` v`version` and decodes the answer, all within `timeout`.
    pub async fn call<M: Encode, R: Decode>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &M,
        timeout: Duration,
    ) -> Result<R, ClientError> {
        tokio::time::timeout(timeout, self.call_inner(key, version, body))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    async fn call_inner<M: Encode, R: Decode>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &M,
    ) -> Result<R, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader {
            request_api_key: key as i16,
            request_api_version: version,
            correlation_id: self.correlation_id,
            client_id: Some(self.client_id.clone()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &header, body)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.stream.write_all(&buf).await?;
        let len = self.stream.read_i32().await?;
        let len =
            usize::try_from(len).map_err(|_| ClientError::Malformed("negative length".into()))?;
        if len > self.max_response_bytes {
            return Err(ClientError::TooLarge(len));
        }
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame).await?;
        let mut frame = Bytes::from(frame);
        let h = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        if h.correlation_id != self.correlation_id {
            return Err(ClientError::Malformed(format!(
                "correlation id {} answers {}",
                h.correlation_id, self.correlation_id
            )));
        }
        R::decode(&mut frame, version).map_err(|e| ClientError::Malformed(e.to_string()))
    }
}

//! One blocking connection speaking the Kafka protocol itself, one request at a time, for the
//! commands whose requests librdkafka has no API for (`potok cluster`, `potok transactions`):
//! DescribeQuorum, DescribeTransactions, ListTransactions, DescribeProducers, WriteTxnMarkers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use potok_protocol::messages::RequestHeader;
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode, ErrorCode};

use crate::client::ClientArgs;
use crate::error::{Error, Result};

/// The largest response read (these answers are a few KiB; a bound keeps a confused peer from
/// making the command allocate without limit).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// One connection speaking the Kafka protocol, one request at a time.
pub struct Conn {
    s: TcpStream,
    corr: i32,
    addr: String,
}

impl Conn {
    /// Connects to the first bootstrap address that accepts a connection.
    pub fn open(args: &ClientArgs) -> Result<Conn> {
        let mut last = String::from("no address given");
        for addr in args.bootstrap_server.split(',').map(str::trim) {
            let addrs = match std::net::ToSocketAddrs::to_socket_addrs(addr) {
                Ok(a) => a.collect::<Vec<_>>(),
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            for a in addrs {
                match TcpStream::connect_timeout(&a, args.timeout()) {
                    Ok(s) => {
                        let io = |e| Error::io(format!("configuring the connection to {addr}"), e);
                        s.set_read_timeout(Some(args.timeout())).map_err(io)?;
                        s.set_write_timeout(Some(args.timeout())).map_err(io)?;
                        return Ok(Conn {
                            s,
                            corr: 0,
                            addr: addr.to_string(),
                        });
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
        }
        Err(Error::Unreachable {
            bootstrap: args.bootstrap_server.clone(),
            timeout_ms: args.timeout_ms,
            detail: last,
        })
    }

    /// Connects to one broker's address (`host:port`), e.g. a coordinator or partition leader.
    pub fn to(addr: &str, timeout: Duration) -> Result<Conn> {
        let unreachable = |detail: String| Error::Unreachable {
            bootstrap: addr.to_string(),
            timeout_ms: timeout.as_millis() as u64,
            detail,
        };
        let addrs = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| unreachable(format!("{addr}: {e}")))?;
        let mut last = format!("{addr}: no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    let io = |e| Error::io(format!("configuring the connection to {addr}"), e);
                    s.set_read_timeout(Some(timeout)).map_err(io)?;
                    s.set_write_timeout(Some(timeout)).map_err(io)?;
                    return Ok(Conn {
                        s,
                        corr: 0,
                        addr: addr.to_string(),
                    });
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(unreachable(last))
    }

    /// The address this connection went to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request and reads its response.
    pub fn call<M: Encode, R: Decode>(&mut self, key: ApiKey, version: i16, body: &M) -> Result<R> {
        let context = format!("{key:?} v{version} to {}", self.addr);
        self.corr += 1;
        let header = RequestHeader {
            request_api_key: key as i16,
            request_api_version: version,
            correlation_id: self.corr,
            client_id: Some("potok-cli".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &header, body)
            .map_err(|e| Error::Usage(format!("{context}: cannot encode: {e}")))?;
        self.s
            .write_all(&buf)
            .map_err(|e| Error::io(context.clone(), e))?;
        let mut len = [0u8; 4];
        self.s
            .read_exact(&mut len)
            .map_err(|e| Error::io(context.clone(), e))?;
        let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if !(4..=MAX_RESPONSE).contains(&len) {
            return Err(Error::Usage(format!(
                "{context}: implausible response size {len}"
            )));
        }
        let mut body = vec![0u8; len];
        self.s
            .read_exact(&mut body)
            .map_err(|e| Error::io(context.clone(), e))?;
        let mut b = Bytes::from(body);
        let bad = |what: &str| Error::Usage(format!("{context}: {what}"));
        if b.get_i32() != self.corr {
            return Err(bad("the response answers another request"));
        }
        if key.response_header_version(version) >= 1 {
            // The response header's tagged fields: none are defined; skip a count of zero.
            if b.is_empty() || b.get_u8() != 0 {
                return Err(bad("unexpected tagged fields in the response header"));
            }
        }
        R::decode(&mut b, version).map_err(|e| bad(&format!("undecodable response: {e}")))
    }
}

/// `Ok` for error code 0, otherwise an error naming the request and Kafka's error.
pub fn check(context: &str, code: i16, message: Option<&str>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name =
        ErrorCode::from_code(code).map_or_else(|| format!("error {code}"), |c| format!("{c:?}"));
    Err(Error::Usage(match message {
        Some(m) if !m.is_empty() => format!("{context}: {name}: {m}"),
        _ => format!("{context}: {name}"),
    }))
}

/// Wall-clock milliseconds since the epoch, as Kafka's timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

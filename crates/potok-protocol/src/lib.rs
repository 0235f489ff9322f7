//! The Kafka wire protocol: generated message types, headers and framing. No IO.

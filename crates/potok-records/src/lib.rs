//! Kafka RecordBatch v2 (magic 2) over `Bytes`: parsing, validation, offset rewriting, codecs.

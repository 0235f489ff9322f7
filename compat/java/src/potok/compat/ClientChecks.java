package potok.compat;

import static potok.compat.Checks.eq;
import static potok.compat.Checks.expectThrows;
import static potok.compat.Checks.fail;
import static potok.compat.Checks.isTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

/** The producer and the consumer without groups: what the Java client writes comes back exactly. */
final class ClientChecks {
    private ClientChecks() {
    }

    static void run(Ctx ctx, Checks checks) {
        checks.check("producer.java_defaults_idempotent_acks_all", () -> javaDefaults(ctx));
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            checks.check("producer.compression." + codec, () -> compression(ctx, codec));
        }
        checks.check("producer.keys_headers_timestamps", () -> keysHeadersTimestamps(ctx));
        checks.check("producer.max_in_flight_5_keeps_order", () -> maxInFlight(ctx));
        checks.check("producer.record_too_large", () -> recordTooLarge(ctx));
        checks.check("consumer.watermarks_and_offsets_for_times", () -> offsetsForTimes(ctx));
        checks.check("consumer.seek_and_position", () -> seekAndPosition(ctx));
        checks.check("consumer.auto_commit_on_close", () -> autoCommit(ctx));
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    /** Reads {@code count} records from the start of {@code partitions} without a group. */
    static <K, V> List<ConsumerRecord<K, V>> readAll(KafkaConsumer<K, V> consumer, List<TopicPartition> partitions,
            int count) {
        consumer.assign(partitions);
        consumer.seekToBeginning(partitions);
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 30_000;
        while (out.size() < count) {
            if (System.currentTimeMillis() > deadline) {
                throw fail("read " + out.size() + " of " + count + " records from " + partitions + " in 30 s");
            }
            for (ConsumerRecord<K, V> r : consumer.poll(Duration.ofMillis(200))) {
                out.add(r);
            }
        }
        // Nothing beyond what was written.
        isTrue(consumer.poll(Duration.ofMillis(300)).isEmpty(), "more than " + count + " records in " + partitions);
        return out;
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new TopicPartition(topic, i));
        }
        return out;
    }

    /**
     * No producer settings at all: since Kafka 3.0 that means enable.idempotence=true and acks=all.
     * The broker must have handed out a producer id (DescribeProducers shows it with the last
     * sequence of every partition written) and every keyed record lands where murmur2 put it.
     */
    private static void javaDefaults(Ctx ctx) throws Exception {
        String topic = ctx.name("java-defaults");
        try (Admin admin = ctx.admin()) {
            ctx.createTopic(admin, topic, 3);
            Map<Integer, Integer> perPartition = new HashMap<>();
            try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = 0; i < 60; i++) {
                    sent.add(p.send(new ProducerRecord<>(topic, "key-" + i, "value-" + i)));
                }
                for (int i = 0; i < sent.size(); i++) {
                    RecordMetadata m = sent.get(i).get(30, TimeUnit.SECONDS);
                    int seen = perPartition.merge(m.partition(), 1, Integer::sum);
                    eq((long) seen - 1, m.offset(), "offset of record " + i + " in partition " + m.partition());
                }
            }
            List<TopicPartition> tps = partitions(topic, 3);
            Map<TopicPartition, PartitionProducerState> states = admin.describeProducers(tps).all().get(30,
                    TimeUnit.SECONDS);
            for (TopicPartition tp : tps) {
                int written = perPartition.getOrDefault(tp.partition(), 0);
                List<ProducerState> active = states.get(tp).activeProducers();
                if (written == 0) {
                    eq(0, active.size(), "producers on unwritten " + tp);
                    continue;
                }
                eq(1, active.size(), "idempotent producers on " + tp);
                isTrue(active.get(0).producerId() >= 0, "producer id on " + tp + " is " + active.get(0).producerId());
                eq(written - 1, active.get(0).lastSequence(), "last sequence on " + tp);
            }
            try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of())) {
                List<ConsumerRecord<String, String>> got = readAll(c, tps, 60);
                for (ConsumerRecord<String, String> r : got) {
                    eq("value-" + r.key().substring(4), r.value(), "value of " + r.key());
                }
            }
        }
    }

    /** Every codec the Java client has, with keys and headers, read back byte for byte in order. */
    private static void compression(Ctx ctx, String codec) throws Exception {
        String topic = ctx.name("codec-" + codec);
        ctx.createTopic(topic, 1);
        int n = 300;
        // linger and a large batch so records share compressed batches.
        try (KafkaProducer<byte[], byte[]> p = ctx.bytesProducer(
                Map.of("compression.type", codec, "linger.ms", "20", "batch.size", "65536"))) {
            for (int i = 0; i < n; i++) {
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, 0, bytes("k" + i),
                        bytes(("record " + i + " of the " + codec + " check ").repeat(1 + i % 7)));
                r.headers().add("codec", bytes(codec)).add("i", bytes(Integer.toString(i)));
                p.send(r);
            }
            p.flush();
        }
        try (KafkaConsumer<byte[], byte[]> c = ctx.bytesConsumer(Map.of())) {
            List<ConsumerRecord<byte[], byte[]>> got = readAll(c, partitions(topic, 1), n);
            for (int i = 0; i < n; i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                eq((long) i, r.offset(), "offset");
                eq("k" + i, str(r.key()), "key at " + i);
                eq(("record " + i + " of the " + codec + " check ").repeat(1 + i % 7), str(r.value()), "value at " + i);
                eq(codec, str(r.headers().lastHeader("codec").value()), "codec header at " + i);
                eq(Integer.toString(i), str(r.headers().lastHeader("i").value()), "i header at " + i);
            }
        }
    }

    /** Null, empty and binary keys; repeated, empty and null headers; tombstones; timestamps. */
    private static void keysHeadersTimestamps(Ctx ctx) throws Exception {
        String topic = ctx.name("keys-headers");
        ctx.createTopic(topic, 1);
        byte[] allBytes = new byte[256];
        for (int i = 0; i < 256; i++) {
            allBytes[i] = (byte) i;
        }
        List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_000L, null, bytes("no key")));
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_001L, new byte[0], bytes("empty key")));
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_002L, allBytes, allBytes));
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_003L, bytes("tombstone"), (byte[]) null));
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_004L, bytes("empty value"), new byte[0]));
        sent.add(new ProducerRecord<>(topic, 0, 1_600_000_000_005L, bytes("headers"), bytes("v"),
                List.of(new RecordHeader("h", bytes("first")), new RecordHeader("h", bytes("second")),
                        new RecordHeader("empty", new byte[0]), new RecordHeader("null", (byte[]) null),
                        new RecordHeader("binary", allBytes))));
        try (KafkaProducer<byte[], byte[]> p = ctx.bytesProducer(Map.of())) {
            for (ProducerRecord<byte[], byte[]> r : sent) {
                p.send(r).get(30, TimeUnit.SECONDS);
            }
        }
        try (KafkaConsumer<byte[], byte[]> c = ctx.bytesConsumer(Map.of())) {
            List<ConsumerRecord<byte[], byte[]>> got = readAll(c, partitions(topic, 1), sent.size());
            for (int i = 0; i < sent.size(); i++) {
                ProducerRecord<byte[], byte[]> s = sent.get(i);
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                isTrue(Arrays.equals(s.key(), r.key()), "key of record " + i);
                isTrue(Arrays.equals(s.value(), r.value()), "value of record " + i);
                eq(s.timestamp(), r.timestamp(), "timestamp of record " + i);
                eq(TimestampType.CREATE_TIME, r.timestampType(), "timestamp type of record " + i);
                Header[] want = s.headers().toArray();
                Header[] have = r.headers().toArray();
                eq(want.length, have.length, "header count of record " + i);
                for (int h = 0; h < want.length; h++) {
                    eq(want[h].key(), have[h].key(), "header " + h + " key of record " + i);
                    isTrue(Arrays.equals(want[h].value(), have[h].value()), "header " + want[h].key() + " value");
                }
            }
        }
    }

    /**
     * Five requests in flight on one connection with small batches: the idempotent producer's
     * sequence numbers keep the order, so offsets follow the send order exactly with no gap or
     * duplicate.
     */
    private static void maxInFlight(Ctx ctx) throws Exception {
        String topic = ctx.name("in-flight");
        ctx.createTopic(topic, 1);
        int n = 4000;
        List<Future<RecordMetadata>> sent = new ArrayList<>(n);
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of("max.in.flight.requests.per.connection",
                "5", "batch.size", "1024", "linger.ms", "0", "enable.idempotence", "true"))) {
            for (int i = 0; i < n; i++) {
                sent.add(p.send(new ProducerRecord<>(topic, 0, null, String.format("%06d-%s", i, "x".repeat(90)))));
            }
            p.flush();
        }
        for (int i = 0; i < n; i++) {
            eq((long) i, sent.get(i).get().offset(), "offset of send " + i);
        }
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of())) {
            List<ConsumerRecord<String, String>> got = readAll(c, partitions(topic, 1), n);
            for (int i = 0; i < n; i++) {
                eq(String.format("%06d", i), got.get(i).value().substring(0, 6), "record at offset " + i);
            }
        }
    }

    /** A record over the broker's message.max.bytes is refused with RECORD_TOO_LARGE. */
    private static void recordTooLarge(Ctx ctx) throws Exception {
        String topic = ctx.name("too-large");
        ctx.createTopic(topic, 1);
        try (KafkaProducer<byte[], byte[]> p = ctx.bytesProducer(Map.of("max.request.size", "4194304",
                "compression.type", "none", "retries", "0"))) {
            expectThrows(RecordTooLargeException.class, "2 MiB record",
                    () -> p.send(new ProducerRecord<>(topic, 0, null, new byte[2 << 20])).get(30, TimeUnit.SECONDS));
            // The producer is still usable afterwards.
            eq(0L, p.send(new ProducerRecord<>(topic, 0, null, bytes("small"))).get(30, TimeUnit.SECONDS).offset(),
                    "offset of the record after the refused one");
        }
    }

    private static void offsetsForTimes(Ctx ctx) throws Exception {
        String topic = ctx.name("times");
        ctx.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, 1_000L * (i + 1), null, "t" + i)).get(30, TimeUnit.SECONDS);
            }
        }
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of())) {
            eq(0L, c.beginningOffsets(List.of(tp)).get(tp), "beginning offset");
            eq(10L, c.endOffsets(List.of(tp)).get(tp), "end offset");
            OffsetAndTimestamp at = c.offsetsForTimes(Map.of(tp, 4_500L)).get(tp);
            isTrue(at != null, "offsetsForTimes(4500) found nothing");
            eq(4L, at.offset(), "offset for time 4500");
            eq(5_000L, at.timestamp(), "timestamp for time 4500");
            eq(0L, c.offsetsForTimes(Map.of(tp, 0L)).get(tp).offset(), "offset for time 0");
            eq(null, c.offsetsForTimes(Map.of(tp, 11_000L)).get(tp), "offset for a time after the last record");
        }
    }

    private static void seekAndPosition(Ctx ctx) throws Exception {
        String topic = ctx.name("seek");
        ctx.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, null, "s" + i));
            }
            p.flush();
        }
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of("max.poll.records", "3"))) {
            c.assign(List.of(tp));
            c.seek(tp, 5);
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 30_000;
            while (got.isEmpty() && System.currentTimeMillis() < deadline) {
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            isTrue(!got.isEmpty(), "nothing read after seek(5)");
            eq(5L, got.get(0).offset(), "first offset after seek(5)");
            eq("s5", got.get(0).value(), "first value after seek(5)");
            eq(5L + got.size(), c.position(tp), "position after reading " + got.size());
            c.seekToEnd(List.of(tp));
            eq(10L, c.position(tp), "position after seekToEnd");
            c.seekToBeginning(List.of(tp));
            eq(0L, c.position(tp), "position after seekToBeginning");
        }
    }

    /** enable.auto.commit (the default) commits the consumed position when the consumer closes. */
    private static void autoCommit(Ctx ctx) throws Exception {
        String topic = ctx.name("auto-commit");
        String group = ctx.name("auto-commit-group");
        ctx.createTopic(topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
            for (int i = 0; i < 25; i++) {
                p.send(new ProducerRecord<>(topic, 0, null, "a" + i));
            }
            p.flush();
        }
        int read = 0;
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of("group.id", group))) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (read < 25 && System.currentTimeMillis() < deadline) {
                read += c.poll(Duration.ofMillis(200)).count();
            }
            eq(25, read, "records read by the group member");
        }
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of("group.id", group))) {
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Collections.singleton(tp));
            isTrue(committed.get(tp) != null, "no committed offset after close");
            eq(25L, committed.get(tp).offset(), "committed offset after close");
        }
    }
}

package potok.compat;

import static potok.compat.Checks.eq;
import static potok.compat.Checks.fail;
import static potok.compat.Checks.isTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * Kafka Streams on the broker: a word count (KStream, groupBy through a repartition topic,
 * count into a RocksDB store backed by a compacted changelog, KTable to an output topic).
 */
final class StreamsChecks {
    private StreamsChecks() {
    }

    static void run(Ctx ctx, Checks checks) {
        checks.check("streams.word_count_at_least_once", () -> wordCount(ctx, "at_least_once"));
    }

    private static final String[] WORDS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};

    private static void wordCount(Ctx ctx, String guarantee) throws Exception {
        String app = ctx.name("word-count");
        String input = ctx.name("wc-input");
        String output = ctx.name("wc-output");
        try (Admin admin = ctx.admin()) {
            ctx.createTopic(admin, input, 2);
            ctx.createTopic(admin, output, 2);
        }
        // 300 lines of 1 to 4 words from a fixed sequence: the expected counts are known exactly.
        Map<String, Long> expected = new TreeMap<>();
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
            for (int i = 0; i < 300; i++) {
                List<String> line = new ArrayList<>();
                for (int w = 0; w <= i % 4; w++) {
                    String word = WORDS[(i * 7 + w * 3) % WORDS.length];
                    line.add(word);
                    expected.merge(word, 1L, Long::sum);
                }
                p.send(new ProducerRecord<>(input, "line-" + i, String.join(" ", line)));
            }
            p.flush();
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        Path stateDir = Files.createTempDirectory("potok-streams");
        Properties props = ctx.common();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        // No record cache: every count update reaches the output, so the output is exact.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        try {
            streams.start();
            Map<String, List<Long>> updates = new HashMap<>();
            try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(outputConsumer(ctx), new StringDeserializer(),
                    new LongDeserializer())) {
                c.assign(ClientChecks.partitions(output, 2));
                long deadline = System.currentTimeMillis() + 90_000;
                while (!latest(updates).equals(expected)) {
                    if (System.currentTimeMillis() > deadline) {
                        throw fail("output after 90 s: " + latest(updates) + ", expected " + expected + "; streams "
                                + streams.state());
                    }
                    for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                        updates.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                    }
                }
            }
            // Without a cache and without failures each word's counts arrive one by one, in order.
            for (var e : expected.entrySet()) {
                List<Long> want = new ArrayList<>();
                for (long n = 1; n <= e.getValue(); n++) {
                    want.add(n);
                }
                eq(want, updates.get(e.getKey()), "updates of " + e.getKey());
            }
            eq(KafkaStreams.State.RUNNING, streams.state(), "streams state");

            ReadOnlyKeyValueStore<String, Long> store = streams.store(StoreQueryParameters.fromNameAndType("counts",
                    QueryableStoreTypes.keyValueStore()));
            for (var e : expected.entrySet()) {
                eq(e.getValue(), store.get(e.getKey()), "store count of " + e.getKey());
            }

            try (Admin admin = ctx.admin()) {
                Set<String> topics = admin.listTopics().names().get(30, TimeUnit.SECONDS);
                String repartition = app + "-words-repartition";
                String changelog = app + "-counts-changelog";
                isTrue(topics.contains(repartition), "no repartition topic " + repartition + " in " + topics);
                isTrue(topics.contains(changelog), "no changelog topic " + changelog + " in " + topics);
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
                eq("compact", AdminChecks.entry(admin, res, "cleanup.policy").value(), "changelog cleanup.policy");
            }
        } finally {
            streams.close(Duration.ofSeconds(30));
            streams.cleanUp();
            deleteTree(stateDir);
        }
    }

    private static Properties outputConsumer(Ctx ctx) {
        Properties p = ctx.common();
        p.put("auto.offset.reset", "earliest");
        return p;
    }

    private static Map<String, Long> latest(Map<String, List<Long>> updates) {
        Map<String, Long> out = new TreeMap<>();
        updates.forEach((k, v) -> out.put(k, v.get(v.size() - 1)));
        return out;
    }

    private static void deleteTree(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (Exception e) {
            // A leftover temporary directory is not a failed check.
        }
    }
}

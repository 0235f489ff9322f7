package potok.compat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka's Java client producing and consuming across a partition leader's SIGKILL (issue 18,
 * acceptance 2), the Java side of {@code crates/potok/tests/failover_clients.rs}; the same protocol
 * as {@code crates/potok/tests/python/failover_clients.py}.
 *
 * <pre>
 * java -cp CLASSES:KAFKA_CLASSPATH potok.compat.Failover HOST:PORT TOPIC PARTITIONS DIR
 * </pre>
 *
 * One bootstrap address. A consumer assigns every partition from offset 0 before the first record
 * and polls on its own thread throughout. The producer (acks=all, idempotence on, both Kafka 4.x
 * defaults, spelled out) sends BEFORE records per partition and waits for them, creates DIR/ready,
 * sends DURING more paced while the caller SIGKILLs the leader of partition 0 and creates
 * DIR/killed, then sends AFTER more and waits for them, creates DIR/rejoin, waits for the caller to
 * restart the killed node (DIR/restarted) and sends the last REJOIN paced while it catches up.
 * Every send's callback must succeed, and the consumer must read
 * every value exactly once, in order, per partition. Prints {@code OK Failover} and exits 0, or
 * prints {@code FAILED reason} and exits 1.
 */
public final class Failover {
    private static final int BEFORE = 50;
    private static final int DURING = 100;
    private static final int AFTER = 100;
    private static final int REJOIN = 100;
    private static final int PER_PARTITION = BEFORE + DURING + AFTER + REJOIN;
    private static final Duration KILL_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration DRAIN_TIMEOUT = Duration.ofSeconds(120);

    private Failover() {
    }

    private static String value(int partition, int seq) {
        return "java-" + partition + "-" + seq;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: Failover HOST:PORT TOPIC PARTITIONS DIR");
            System.exit(2);
        }
        long started = System.nanoTime();
        try {
            run(args[0], args[1], Integer.parseInt(args[2]), Path.of(args[3]));
        } catch (Throwable e) {
            e.printStackTrace();
            System.out.println("FAILED " + e);
            System.out.flush();
            System.exit(1);
        }
        System.out.printf("OK Failover in %.1fs%n", (System.nanoTime() - started) / 1e9);
        System.out.flush();
        // Client threads must not keep the JVM up.
        System.exit(0);
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalStateException(message);
        }
    }

    private static void run(String bootstrap, String topic, int partitions, Path dir) throws Exception {
        Map<Integer, List<String>> reads = new ConcurrentHashMap<>();
        for (int p = 0; p < partitions; p++) {
            reads.put(p, new CopyOnWriteArrayList<>());
        }
        AtomicReference<Throwable> consumerError = new AtomicReference<>();
        int total = PER_PARTITION * partitions;
        Thread reader = new Thread(() -> consume(bootstrap, topic, partitions, reads, total, consumerError));
        reader.setDaemon(true);
        reader.start();

        Properties pc = new Properties();
        pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pc.put(ProducerConfig.ACKS_CONFIG, "all");
        pc.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pc.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pc.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        pc.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        pc.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pc.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        List<java.util.concurrent.Future<?>> sends = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pc)) {
            for (int i = 0; i < PER_PARTITION; i++) {
                if (i == BEFORE) {
                    producer.flush();
                    check(errors.isEmpty(), "send errors before the kill: " + errors);
                    for (var f : sends) {
                        f.get(DRAIN_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
                    }
                    System.out.println("-- java: " + BEFORE + " records per partition acknowledged, asking for the kill");
                    Files.writeString(dir.resolve("ready"), "1\n");
                }
                if (i == BEFORE + DURING) {
                    waitFor(dir, "killed", "kill the leader");
                    System.out.println("-- java: leader killed; producing more");
                }
                if (i == BEFORE + DURING + AFTER) {
                    producer.flush();
                    check(errors.isEmpty(), "send errors after the kill: " + errors);
                    for (var f : sends) {
                        f.get(DRAIN_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
                    }
                    System.out.println("-- java: " + i + " records per partition acknowledged, asking for the restart");
                    Files.writeString(dir.resolve("rejoin"), "1\n");
                    waitFor(dir, "restarted", "restart the killed node");
                }
                for (int p = 0; p < partitions; p++) {
                    String v = value(p, i);
                    sends.add(producer.send(new ProducerRecord<>(topic, p, null, v), (md, e) -> {
                        if (e != null) {
                            errors.add(v + ": " + e);
                        }
                    }));
                }
                if (i >= BEFORE && i < BEFORE + DURING || i >= BEFORE + DURING + AFTER) {
                    Thread.sleep(10);
                }
            }
            producer.flush();
            for (var f : sends) {
                f.get(DRAIN_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
            }
        }
        check(errors.isEmpty(), "send errors: " + errors);
        check(sends.size() == total, "sends " + sends.size());
        System.out.println("-- java: all " + total + " records acknowledged");
        reader.join(DRAIN_TIMEOUT.toMillis() + 60_000);
        check(consumerError.get() == null, "the consumer surfaced " + consumerError.get());
        for (int p = 0; p < partitions; p++) {
            List<String> got = reads.get(p);
            Set<String> distinct = new HashSet<>(got);
            check(distinct.size() == got.size(), "duplicates read from partition " + p);
            List<String> want = new ArrayList<>();
            for (int i = 0; i < PER_PARTITION; i++) {
                want.add(value(p, i));
            }
            check(got.equals(want), "partition " + p + ": read " + got.size() + " values, expected "
                    + want.size() + " in order; first difference at "
                    + firstDifference(got, want));
        }
    }

    private static void waitFor(Path dir, String name, String what) throws InterruptedException {
        long deadline = System.nanoTime() + KILL_TIMEOUT.toNanos();
        while (!Files.exists(dir.resolve(name))) {
            check(System.nanoTime() < deadline, "the caller did not " + what);
            Thread.sleep(10);
        }
    }

    private static int firstDifference(List<String> a, List<String> b) {
        int i = 0;
        while (i < a.size() && i < b.size() && a.get(i).equals(b.get(i))) {
            i++;
        }
        return i;
    }

    private static void consume(String bootstrap, String topic, int partitions, Map<Integer, List<String>> reads,
            int total, AtomicReference<Throwable> error) {
        Properties cc = new Properties();
        cc.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cc.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cc.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        cc.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cc.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        long deadline = System.nanoTime() + KILL_TIMEOUT.toNanos() + DRAIN_TIMEOUT.toNanos() * 2;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cc)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            consumer.assign(tps);
            for (TopicPartition tp : tps) {
                consumer.seek(tp, 0);
            }
            int read = 0;
            while (read < total && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    reads.get(r.partition()).add(r.value());
                    read++;
                }
            }
        } catch (Throwable e) {
            // What the application would see thrown from poll().
            error.set(e);
        }
    }
}

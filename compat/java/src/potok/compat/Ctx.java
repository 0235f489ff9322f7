package potok.compat;

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * What every check needs: the broker under test, unique names (the reference broker is shared by
 * a whole run, so names never collide), and clients with bounded timeouts so a broker that does
 * not answer fails the check instead of hanging it.
 */
final class Ctx {
    final String bootstrap;
    /** True when the broker under test is Apache Kafka itself (the reference). */
    final boolean kafka;
    private final String run = UUID.randomUUID().toString().substring(0, 8);

    Ctx(String bootstrap, boolean kafka) {
        this.bootstrap = bootstrap;
        this.kafka = kafka;
    }

    /** A topic or group name unique to this run. */
    String name(String base) {
        return base + "-" + run;
    }

    Properties common() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "30000");
        return p;
    }

    Admin admin() {
        Properties p = common();
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "potok-compat-admin");
        return Admin.create(p);
    }

    /** A producer with the Java defaults except for bounded blocking; {@code extra} overrides. */
    KafkaProducer<byte[], byte[]> bytesProducer(Map<String, String> extra) {
        Properties p = common();
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.putAll(extra);
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    KafkaProducer<String, String> stringProducer(Map<String, String> extra) {
        Properties p = common();
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        p.putAll(extra);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    KafkaConsumer<byte[], byte[]> bytesConsumer(Map<String, String> extra) {
        Properties p = common();
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.putAll(extra);
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    KafkaConsumer<String, String> stringConsumer(Map<String, String> extra) {
        Properties p = common();
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.putAll(extra);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    /** Creates {@code name} with {@code partitions} partitions (replication factor 1) and waits. */
    void createTopic(Admin admin, String name, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        awaitTopic(admin, name, partitions);
    }

    /**
     * Waits until the broker's metadata shows {@code name} with {@code partitions} led
     * partitions. Kafka answers CreateTopics once the controller has committed the topic; its
     * broker learns of it a moment later (KRaft metadata propagation), so clients that look
     * right away may not see it yet.
     */
    static void awaitTopic(Admin admin, String name, int partitions) throws Exception {
        Checks.waitUntil(15_000, "topic " + name + " in the metadata", () -> {
            try {
                var d = admin.describeTopics(List.of(name)).allTopicNames().get(10, TimeUnit.SECONDS).get(name);
                return d.partitions().size() == partitions && d.partitions().stream().allMatch(p -> p.leader() != null)
                        && admin.listTopics().names().get(10, TimeUnit.SECONDS).contains(name);
            } catch (Exception e) {
                return false;
            }
        });
    }

    void createTopic(String name, int partitions) throws Exception {
        try (Admin admin = admin()) {
            createTopic(admin, name, partitions);
        }
    }
}

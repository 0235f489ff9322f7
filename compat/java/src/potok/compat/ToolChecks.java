package potok.compat;

import static potok.compat.Checks.eq;
import static potok.compat.Checks.fail;
import static potok.compat.Checks.isTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;

/**
 * Kafka's own command-line tools against the broker, each through the class its shell wrapper
 * runs (kafka-topics.sh is org.apache.kafka.tools.TopicCommand, and so on). Every check reads
 * what the tool printed, as an operator would.
 */
final class ToolChecks {
    private ToolChecks() {
    }

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
    static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";
    static final String DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand";
    static final String PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance";
    static final String CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance";
    static final String VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer";
    static final String VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer";

    static void run(Ctx ctx, Checks checks) {
        checks.check("tools.kafka-topics", () -> topics(ctx));
        checks.check("tools.kafka-configs", () -> configs(ctx));
        checks.check("tools.console_producer_consumer_groups_offsets_records", () -> console(ctx));
        checks.check("tools.producer_consumer_perf_test", () -> perf(ctx));
        checks.check("tools.verifiable_producer_consumer", () -> verifiable(ctx));
    }

    static void contains(String haystack, String needle, String what) {
        if (!haystack.contains(needle)) {
            throw fail(what + ": expected the output to contain <" + needle + ">:\n" + haystack);
        }
    }

    static void lacks(String haystack, String needle, String what) {
        if (haystack.contains(needle)) {
            throw fail(what + ": expected the output not to contain <" + needle + ">:\n" + haystack);
        }
    }

    /** kafka-topics: create (with a config), list, describe, alter the partition count, delete. */
    private static void topics(Ctx ctx) throws Exception {
        String b = ctx.bootstrap;
        String topic = ctx.name("tool-topics");
        Tools.Result r = Tools.run(TOPICS, null, "--bootstrap-server", b, "--create", "--topic", topic,
                "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=86400000")
                .expectOk("--create");
        contains(r.out(), "Created topic " + topic + ".", "--create");
        try (Admin admin = ctx.admin()) {
            Ctx.awaitTopic(admin, topic, 3);
        }

        Tools.Result again = Tools.run(TOPICS, null, "--bootstrap-server", b, "--create", "--topic", topic,
                "--partitions", "1");
        eq(1, again.status(), "exit status of creating an existing topic: " + again.both());
        contains(again.out() + again.err(), "already exists", "creating an existing topic");

        isTrue(Tools.run(TOPICS, null, "--bootstrap-server", b, "--list").expectOk("--list").lines().contains(topic),
                "--list lacks " + topic);

        String described = Tools.run(TOPICS, null, "--bootstrap-server", b, "--describe", "--topic", topic)
                .expectOk("--describe").out();
        contains(described, "Topic: " + topic + "\tTopicId: ", "--describe");
        contains(described, "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: ", "--describe");
        contains(described, "retention.ms=86400000", "--describe configs");
        for (int p = 0; p < 3; p++) {
            Matcher m = Pattern.compile("Topic: " + Pattern.quote(topic) + "\tPartition: " + p
                    + "\tLeader: (\\d+)\tReplicas: (\\d+)\tIsr: (\\d+)").matcher(described);
            isTrue(m.find(), "--describe has no line for partition " + p + ":\n" + described);
            eq(m.group(1), m.group(2), "replicas of partition " + p);
            eq(m.group(1), m.group(3), "isr of partition " + p);
        }

        Tools.run(TOPICS, null, "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", "5")
                .expectOk("--alter --partitions 5");
        try (Admin admin = ctx.admin()) {
            Ctx.awaitTopic(admin, topic, 5);
        }
        contains(Tools.run(TOPICS, null, "--bootstrap-server", b, "--describe", "--topic", topic)
                .expectOk("--describe after --alter").out(), "\tPartitionCount: 5\t", "--describe after --alter");

        Tools.run(TOPICS, null, "--bootstrap-server", b, "--delete", "--topic", topic).expectOk("--delete");
        Checks.waitUntil(10_000, topic + " gone from --list", () -> {
            try {
                return !Tools.run(TOPICS, null, "--bootstrap-server", b, "--list").lines().contains(topic);
            } catch (Exception e) {
                return false;
            }
        });
    }

    /** kafka-configs: add, describe, delete topic overrides; describe every broker config. */
    private static void configs(Ctx ctx) throws Exception {
        String b = ctx.bootstrap;
        String topic = ctx.name("tool-configs");
        ctx.createTopic(topic, 1);
        Tools.Result r = Tools.run(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics",
                "--entity-name", topic, "--alter", "--add-config", "retention.ms=1000,segment.bytes=1048576")
                .expectOk("--alter --add-config");
        contains(r.out(), "Completed updating config for topic " + topic + ".", "--alter --add-config");

        String described = describeUntil(b, topic, d -> d.contains("retention.ms=1000"));
        contains(described, "Dynamic configs for topic " + topic + " are:", "--describe");
        contains(described, "retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000",
                "--describe");
        contains(described, "segment.bytes=1048576 sensitive=false", "--describe");

        Tools.run(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic,
                "--alter", "--delete-config", "retention.ms").expectOk("--alter --delete-config");
        described = describeUntil(b, topic, d -> !d.contains("retention.ms="));
        lacks(described, "retention.ms=", "--describe after --delete-config");
        contains(described, "segment.bytes=1048576", "--describe after --delete-config");

        String brokerId;
        try (Admin admin = ctx.admin()) {
            brokerId = Integer.toString(admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next()
                    .id());
        }
        String broker = Tools.run(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "brokers",
                "--entity-name", brokerId, "--describe", "--all").expectOk("--describe --all of the broker").out();
        contains(broker, "All configs for broker " + brokerId + " are:", "broker --describe --all");
        contains(broker, "message.max.bytes=1048588", "broker --describe --all");
    }

    /**
     * kafka-configs --describe of a topic once {@code done} holds for its output, or as it is
     * after 10 s (Kafka's brokers apply a committed config change a moment after acknowledging it).
     */
    private static String describeUntil(String b, String topic, java.util.function.Predicate<String> done)
            throws Exception {
        long deadline = System.currentTimeMillis() + 10_000;
        while (true) {
            String out = Tools.run(CONFIGS, null, "--bootstrap-server", b, "--entity-type", "topics", "--entity-name",
                    topic, "--describe").expectOk("--describe").out();
            if (done.test(out) || System.currentTimeMillis() > deadline) {
                return out;
            }
            Thread.sleep(200);
        }
    }

    /**
     * The console producer writes keyed lines, the console consumer reads them back in a group,
     * kafka-consumer-groups describes the group and resets its offsets, kafka-get-offsets shows
     * the watermarks and kafka-delete-records moves the low one.
     */
    private static void console(Ctx ctx) throws Exception {
        String b = ctx.bootstrap;
        String topic = ctx.name("tool-console");
        String group = ctx.name("tool-console-group");
        ctx.createTopic(topic, 1);
        Tools.run(CONSOLE_PRODUCER, "k1:v1\nk2:v2\nk3:v3\nk4:v4\n", "--bootstrap-server", b, "--topic", topic,
                "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                "--command-property", "acks=all").expectOk("console producer");

        Tools.Result consumed = Tools.run(CONSOLE_CONSUMER, null, "--bootstrap-server", b, "--topic", topic,
                "--group", group, "--from-beginning", "--max-messages", "4", "--timeout-ms", "30000",
                "--formatter-property", "print.key=true", "--formatter-property", "key.separator=:")
                .expectOk("console consumer");
        eq(List.of("k1:v1", "k2:v2", "k3:v3", "k4:v4"), consumed.lines(), "console consumer output");
        contains(consumed.err(), "Processed a total of 4 messages", "console consumer summary");

        String groups = Tools.run(GROUPS, null, "--bootstrap-server", b, "--list").expectOk("groups --list").out();
        isTrue(groups.lines().anyMatch(group::equals), "kafka-consumer-groups --list lacks " + group + ":\n" + groups);
        expectGroupRow(b, group, topic, "4", "4", "0");

        Tools.Result dry = Tools.run(GROUPS, null, "--bootstrap-server", b, "--reset-offsets", "--group", group,
                "--topic", topic, "--to-earliest", "--dry-run").expectOk("--reset-offsets --dry-run");
        contains(dry.out(), "NEW-OFFSET", "--reset-offsets --dry-run");
        expectGroupRow(b, group, topic, "4", "4", "0");
        Tools.Result reset = Tools.run(GROUPS, null, "--bootstrap-server", b, "--reset-offsets", "--group", group,
                "--topic", topic, "--to-offset", "1", "--execute").expectOk("--reset-offsets --to-offset 1");
        isTrue(reset.out().matches("(?s).*" + Pattern.quote(group) + "\\s+" + Pattern.quote(topic) + "\\s+0\\s+1\\b.*"),
                "--reset-offsets output:\n" + reset.out());
        expectGroupRow(b, group, topic, "1", "4", "3");
        Tools.run(GROUPS, null, "--bootstrap-server", b, "--reset-offsets", "--group", group, "--topic", topic,
                "--shift-by", "2", "--execute").expectOk("--reset-offsets --shift-by 2");
        expectGroupRow(b, group, topic, "3", "4", "1");

        eq(List.of(topic + ":0:4"), Tools.run(GET_OFFSETS, null, "--bootstrap-server", b, "--topic", topic)
                .expectOk("get-offsets").lines(), "kafka-get-offsets (latest)");
        eq(List.of(topic + ":0:0"), Tools.run(GET_OFFSETS, null, "--bootstrap-server", b, "--topic", topic, "--time",
                "earliest").expectOk("get-offsets --time earliest").lines(), "kafka-get-offsets --time earliest");

        Path json = Files.createTempFile("delete-records", ".json");
        try {
            Files.writeString(json, "{\"partitions\":[{\"topic\":\"" + topic + "\",\"partition\":0,\"offset\":2}],"
                    + "\"version\":1}");
            Tools.Result deleted = Tools.run(DELETE_RECORDS, null, "--bootstrap-server", b, "--offset-json-file",
                    json.toString()).expectOk("kafka-delete-records");
            contains(deleted.out(), "partition: " + topic + "-0\tlow_watermark: 2", "kafka-delete-records");
        } finally {
            Files.deleteIfExists(json);
        }
        eq(List.of(topic + ":0:2"), Tools.run(GET_OFFSETS, null, "--bootstrap-server", b, "--topic", topic, "--time",
                "earliest").expectOk("get-offsets after delete-records").lines(), "earliest after delete-records");

        Tools.Result deletedGroup = Tools.run(GROUPS, null, "--bootstrap-server", b, "--delete", "--group", group)
                .expectOk("groups --delete");
        contains(deletedGroup.out(), "Deletion of requested consumer groups ('" + group + "') was successful.",
                "groups --delete");
    }

    /** kafka-consumer-groups --describe has a row for partition 0 with these offsets and lag. */
    private static void expectGroupRow(String b, String group, String topic, String current, String end, String lag)
            throws Exception {
        String out = Tools.run(GROUPS, null, "--bootstrap-server", b, "--describe", "--group", group)
                .expectOk("groups --describe").out();
        contains(out, "CURRENT-OFFSET", "groups --describe header");
        Pattern row = Pattern.compile("^" + Pattern.quote(group) + "\\s+" + Pattern.quote(topic) + "\\s+0\\s+(\\S+)\\s+"
                + "(\\S+)\\s+(\\S+)", Pattern.MULTILINE);
        Matcher m = row.matcher(out);
        isTrue(m.find(), "groups --describe has no row for partition 0:\n" + out);
        eq(List.of(current, end, lag), List.of(m.group(1), m.group(2), m.group(3)),
                "CURRENT-OFFSET, LOG-END-OFFSET, LAG in:\n" + out);
    }

    /** kafka-producer-perf-test writes N records with acks=all; kafka-consumer-perf-test reads N. */
    private static void perf(Ctx ctx) throws Exception {
        String b = ctx.bootstrap;
        String topic = ctx.name("tool-perf");
        ctx.createTopic(topic, 2);
        Tools.Result produced = Tools.run(PRODUCER_PERF, null, "--topic", topic, "--num-records", "20000",
                "--record-size", "100", "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "acks=all",
                "linger.ms=5").expectOk("producer perf test");
        isTrue(produced.out().matches("(?s).*^20000 records sent, .*records/sec.*$.*")
                || produced.out().contains("\n20000 records sent, "), "producer perf test summary:\n" + produced.out());
        contains(Tools.run(GET_OFFSETS, null, "--bootstrap-server", b, "--topic", topic).expectOk("get-offsets")
                .out(), topic + ":0:", "get-offsets after the perf test");
        long total = 0;
        for (String line : Tools.run(GET_OFFSETS, null, "--bootstrap-server", b, "--topic", topic).lines()) {
            total += Long.parseLong(line.substring(line.lastIndexOf(':') + 1));
        }
        eq(20000L, total, "records in the topic after the producer perf test");

        Tools.Result consumed = Tools.run(CONSUMER_PERF, null, "--bootstrap-server", b, "--topic", topic,
                "--num-records", "20000", "--timeout", "30000").expectOk("consumer perf test");
        List<String> lines = consumed.lines();
        isTrue(lines.size() >= 2, "consumer perf test output:\n" + consumed.out());
        String[] header = lines.get(lines.size() - 2).split(",\\s*");
        String[] values = lines.get(lines.size() - 1).split(",\\s*");
        Map<String, String> row = new HashMap<>();
        for (int i = 0; i < Math.min(header.length, values.length); i++) {
            row.put(header[i].trim(), values[i].trim());
        }
        eq("20000", row.get("data.consumed.in.nMsg"), "records consumed by the consumer perf test:\n" + consumed.out());
    }

    /** kafka-verifiable-producer acks every record; kafka-verifiable-consumer reads and commits them all. */
    private static void verifiable(Ctx ctx) throws Exception {
        String b = ctx.bootstrap;
        String topic = ctx.name("tool-verifiable");
        ctx.createTopic(topic, 2);
        Tools.Result produced = Tools.runJvm(90, VERIFIABLE_PRODUCER, "--bootstrap-server", b, "--topic", topic,
                "--max-messages", "500", "--acks", "-1").expectOk("verifiable producer");
        int acked = 0;
        for (String line : produced.lines()) {
            if (line.contains("\"name\":\"producer_send_error\"")) {
                throw fail("verifiable producer send error: " + line);
            }
            if (line.contains("\"name\":\"producer_send_success\"")) {
                acked++;
            }
        }
        eq(500, acked, "records the verifiable producer saw acknowledged");
        contains(produced.out(), "\"name\":\"tool_data\",\"sent\":500,\"acked\":500", "verifiable producer summary");

        Tools.Result consumed = Tools.runJvm(90, VERIFIABLE_CONSUMER, "--bootstrap-server", b, "--topic", topic,
                "--group-id", ctx.name("verifiable-group"), "--max-messages", "500", "--reset-policy", "earliest")
                .expectOk("verifiable consumer");
        long count = 0;
        List<String> failures = new ArrayList<>();
        Pattern consumedCount = Pattern.compile("\"name\":\"records_consumed\",\"count\":(\\d+)");
        for (String line : consumed.lines()) {
            Matcher m = consumedCount.matcher(line);
            if (m.find()) {
                count += Long.parseLong(m.group(1));
            }
            if (line.contains("\"name\":\"offsets_committed\"") && line.contains("\"success\":false")) {
                failures.add(line);
            }
        }
        eq(500L, count, "records the verifiable consumer read");
        eq(List.of(), failures, "failed commits");
        contains(consumed.out(), "\"name\":\"partitions_assigned\"", "verifiable consumer events");
        contains(consumed.out(), "\"name\":\"shutdown_complete\"", "verifiable consumer events");
    }
}

package potok.compat;

import static potok.compat.Checks.eq;
import static potok.compat.Checks.expectThrows;
import static potok.compat.Checks.isTrue;
import static potok.compat.Checks.waitUntil;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/** The Java AdminClient: topics, configs, partitions, groups and their offsets, records, the cluster. */
final class AdminChecks {
    private AdminChecks() {
    }

    static final long T = 30;

    static void run(Ctx ctx, Checks checks) {
        checks.check("admin.describe_cluster", () -> describeCluster(ctx));
        checks.check("admin.create_topics", () -> createTopics(ctx));
        checks.check("admin.list_and_describe_topics", () -> describeTopics(ctx));
        checks.check("admin.describe_topics_by_id", () -> describeTopicsById(ctx));
        checks.check("admin.describe_configs", () -> describeConfigs(ctx));
        checks.check("admin.incremental_alter_configs", () -> alterConfigs(ctx));
        checks.check("admin.create_partitions", () -> createPartitions(ctx));
        checks.check("admin.delete_topics", () -> deleteTopics(ctx));
        checks.check("admin.list_offsets", () -> listOffsets(ctx));
        checks.check("admin.delete_records", () -> deleteRecords(ctx));
        checks.check("admin.groups_list_describe_delete", () -> groups(ctx));
        checks.check("admin.group_offsets_list_alter_delete", () -> groupOffsets(ctx));
    }

    private static void describeCluster(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            DescribeClusterResult c = admin.describeCluster();
            Collection<Node> nodes = c.nodes().get(T, TimeUnit.SECONDS);
            eq(1, nodes.size(), "nodes");
            Node node = nodes.iterator().next();
            eq("127.0.0.1:" + node.port(), ctx.bootstrap, "the node is the bootstrap address");
            String clusterId = c.clusterId().get(T, TimeUnit.SECONDS);
            isTrue(clusterId != null && !clusterId.isEmpty(), "cluster id is " + clusterId);
            // The Java client never shows the KRaft controller: DescribeCluster names a broker.
            Node controller = c.controller().get(T, TimeUnit.SECONDS);
            eq(node.id(), controller.id(), "controller id");
        }
    }

    private static void createTopics(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("created");
            CreateTopicsResult r = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000", "cleanup.policy", "compact"))));
            r.all().get(T, TimeUnit.SECONDS);
            eq(3, r.numPartitions(topic).get(), "partitions in the CreateTopics response");
            eq(1, r.replicationFactor(topic).get(), "replication factor in the response");
            isTrue(!Uuid.ZERO_UUID.equals(r.topicId(topic).get()), "topic id in the response");
            Config created = r.config(topic).get();
            eq("3600000", created.get("retention.ms").value(), "retention.ms in the response");
            eq("compact", created.get("cleanup.policy").value(), "cleanup.policy in the response");

            expectThrows(TopicExistsException.class, "creating it again",
                    () -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(T, TimeUnit.SECONDS));
            expectThrows(InvalidTopicException.class, "an invalid name",
                    () -> admin.createTopics(List.of(new NewTopic("bad/name", 1, (short) 1))).all()
                            .get(T, TimeUnit.SECONDS));
            expectThrows(InvalidConfigurationException.class, "an invalid config value",
                    () -> admin.createTopics(List.of(new NewTopic(ctx.name("bad-config"), 1, (short) 1)
                            .configs(Map.of("retention.ms", "soon")))).all().get(T, TimeUnit.SECONDS));

            // validateOnly answers as a creation would and creates nothing.
            String dry = ctx.name("validate-only");
            CreateTopicsResult v = admin.createTopics(List.of(new NewTopic(dry, 2, (short) 1)),
                    new CreateTopicsOptions().validateOnly(true));
            v.all().get(T, TimeUnit.SECONDS);
            eq(2, v.numPartitions(dry).get(), "partitions of a validate-only creation");
            isTrue(!admin.listTopics().names().get(T, TimeUnit.SECONDS).contains(dry), "validate-only created it");
        }
    }

    private static void describeTopics(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("described");
            ctx.createTopic(admin, topic, 2);
            Set<String> names = admin.listTopics().names().get(T, TimeUnit.SECONDS);
            isTrue(names.contains(topic), "listTopics lacks " + topic);
            isTrue(!names.contains("__consumer_offsets"), "listTopics shows internal topics by default");

            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS)
                    .get(topic);
            eq(topic, d.name(), "name");
            eq(false, d.isInternal(), "internal");
            eq(2, d.partitions().size(), "partitions");
            Node node = admin.describeCluster().nodes().get(T, TimeUnit.SECONDS).iterator().next();
            for (TopicPartitionInfo p : d.partitions()) {
                eq(node.id(), p.leader().id(), "leader of partition " + p.partition());
                eq(List.of(node.id()), p.replicas().stream().map(Node::id).toList(), "replicas of " + p.partition());
                eq(List.of(node.id()), p.isr().stream().map(Node::id).toList(), "isr of " + p.partition());
            }
            isTrue(!Uuid.ZERO_UUID.equals(d.topicId()), "topic id");

            expectThrows(UnknownTopicOrPartitionException.class, "describing a missing topic",
                    () -> admin.describeTopics(List.of(ctx.name("missing"))).allTopicNames().get(T, TimeUnit.SECONDS));
        }
    }

    /**
     * describeTopics by topic id: the Java client sends a Metadata request whose topics carry
     * an id and an empty (not null) name, and expects the id back in the response.
     */
    private static void describeTopicsById(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("described-by-id");
            ctx.createTopic(admin, topic, 2);
            Uuid id = admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic)
                    .topicId();
            TopicDescription byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds()
                    .get(T, TimeUnit.SECONDS).get(id);
            eq(topic, byId.name(), "name of the topic described by id");
            eq(2, byId.partitions().size(), "partitions of the topic described by id");
            expectThrows(org.apache.kafka.common.errors.UnknownTopicIdException.class, "describing a missing id",
                    () -> admin.describeTopics(TopicCollection.ofTopicIds(List.of(Uuid.randomUuid()))).allTopicIds()
                            .get(T, TimeUnit.SECONDS));
        }
    }

    static ConfigEntry entry(Admin admin, ConfigResource r, String name) throws Exception {
        return admin.describeConfigs(List.of(r)).all().get(T, TimeUnit.SECONDS).get(r).get(name);
    }

    /**
     * The entry once it has {@code value}, or as it is after 10 s. Kafka acknowledges a config
     * change when the controller has committed it; the broker that describes it applies it a
     * moment later.
     */
    static ConfigEntry awaitEntry(Admin admin, ConfigResource r, String name, String value) throws Exception {
        long deadline = System.currentTimeMillis() + 10_000;
        while (true) {
            ConfigEntry e = entry(admin, r, name);
            if ((e != null && value.equals(e.value())) || System.currentTimeMillis() > deadline) {
                return e;
            }
            Thread.sleep(100);
        }
    }

    private static void describeConfigs(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("configs");
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "7200000"))))
                    .all().get(T, TimeUnit.SECONDS);
            Ctx.awaitTopic(admin, topic, 1);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config config = admin.describeConfigs(List.of(res)).all().get(T, TimeUnit.SECONDS).get(res);
            ConfigEntry retention = config.get("retention.ms");
            eq("7200000", retention.value(), "retention.ms");
            eq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source(), "source of retention.ms");
            ConfigEntry segment = config.get("segment.bytes");
            isTrue(segment != null, "segment.bytes is described");
            eq(ConfigEntry.ConfigSource.DEFAULT_CONFIG, segment.source(), "source of segment.bytes");
            eq(ConfigEntry.ConfigType.INT, segment.type(), "type of segment.bytes");
            eq("delete", config.get("cleanup.policy").value(), "cleanup.policy default");

            String brokerId = Integer.toString(admin.describeCluster().nodes().get(T, TimeUnit.SECONDS).iterator()
                    .next().id());
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
            Config brokerConfig = admin.describeConfigs(List.of(broker)).all().get(T, TimeUnit.SECONDS).get(broker);
            ConfigEntry maxBytes = brokerConfig.get("message.max.bytes");
            isTrue(maxBytes != null, "message.max.bytes is described for the broker");
            eq("1048588", maxBytes.value(), "message.max.bytes");
        }
    }

    private static void alterConfigs(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("alter");
            ctx.createTopic(admin, topic, 1);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "60000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", "2000000"), AlterConfigOp.OpType.SET))))
                    .all().get(T, TimeUnit.SECONDS);
            eq("60000", awaitEntry(admin, res, "retention.ms", "60000").value(), "retention.ms after SET");
            eq("2000000", awaitEntry(admin, res, "max.message.bytes", "2000000").value(),
                    "max.message.bytes after SET");

            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get(T, TimeUnit.SECONDS);
            ConfigEntry retention = awaitEntry(admin, res, "retention.ms", "604800000");
            eq("604800000", retention.value(), "retention.ms after DELETE");
            eq(ConfigEntry.ConfigSource.DEFAULT_CONFIG, retention.source(), "source after DELETE");

            // cleanup.policy is a list: APPEND adds to it.
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND))))
                    .all().get(T, TimeUnit.SECONDS);
            eq("delete,compact", awaitEntry(admin, res, "cleanup.policy", "delete,compact").value(),
                    "cleanup.policy after APPEND");

            expectThrows(InvalidConfigurationException.class, "an invalid value",
                    () -> admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                            new ConfigEntry("retention.ms", "forever"), AlterConfigOp.OpType.SET))))
                            .all().get(T, TimeUnit.SECONDS));
            expectThrows(UnknownTopicOrPartitionException.class, "a missing topic",
                    () -> admin.incrementalAlterConfigs(Map.of(
                            new ConfigResource(ConfigResource.Type.TOPIC, ctx.name("missing")),
                            List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "1000"),
                                    AlterConfigOp.OpType.SET)))).all().get(T, TimeUnit.SECONDS));
        }
    }

    private static void createPartitions(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("grow");
            ctx.createTopic(admin, topic, 2);
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(T, TimeUnit.SECONDS);
            waitUntil(10_000, "5 partitions", () -> {
                try {
                    return admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic)
                            .partitions().size() == 5;
                } catch (Exception e) {
                    return false;
                }
            });
            // The new partitions take records.
            try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
                eq(0L, p.send(new ProducerRecord<>(topic, 4, null, "x")).get(T, TimeUnit.SECONDS).offset(),
                        "offset in the new partition 4");
            }
            expectThrows(InvalidPartitionsException.class, "shrinking",
                    () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all()
                            .get(T, TimeUnit.SECONDS));
            expectThrows(InvalidPartitionsException.class, "the same count",
                    () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all()
                            .get(T, TimeUnit.SECONDS));
            expectThrows(UnknownTopicOrPartitionException.class, "a missing topic",
                    () -> admin.createPartitions(Map.of(ctx.name("missing"), NewPartitions.increaseTo(3))).all()
                            .get(T, TimeUnit.SECONDS));
        }
    }

    private static void deleteTopics(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String byName = ctx.name("delete-by-name");
            String byId = ctx.name("delete-by-id");
            ctx.createTopic(admin, byName, 1);
            ctx.createTopic(admin, byId, 1);
            Uuid id = admin.describeTopics(List.of(byId)).allTopicNames().get(T, TimeUnit.SECONDS).get(byId).topicId();
            admin.deleteTopics(List.of(byName)).all().get(T, TimeUnit.SECONDS);
            admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get(T, TimeUnit.SECONDS);
            waitUntil(10_000, "deleted topics to disappear from listTopics", () -> {
                try {
                    Set<String> names = admin.listTopics(new ListTopicsOptions()).names().get(T, TimeUnit.SECONDS);
                    return !names.contains(byName) && !names.contains(byId);
                } catch (Exception e) {
                    return false;
                }
            });
            expectThrows(UnknownTopicOrPartitionException.class, "deleting it again",
                    () -> admin.deleteTopics(List.of(byName)).all().get(T, TimeUnit.SECONDS));
        }
    }

    private static void listOffsets(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("list-offsets");
            ctx.createTopic(admin, topic, 1);
            TopicPartition tp = new TopicPartition(topic, 0);
            try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
                long[] times = {5_000, 9_000, 7_000, 1_000};
                for (long t : times) {
                    p.send(new ProducerRecord<>(topic, 0, t, null, "at " + t)).get(T, TimeUnit.SECONDS);
                }
            }
            eq(0L, offset(admin, tp, OffsetSpec.earliest()).offset(), "earliest");
            eq(4L, offset(admin, tp, OffsetSpec.latest()).offset(), "latest");
            ListOffsetsResultInfo max = offset(admin, tp, OffsetSpec.maxTimestamp());
            eq(1L, max.offset(), "offset of the max timestamp");
            eq(9_000L, max.timestamp(), "max timestamp");
            ListOffsetsResultInfo at = offset(admin, tp, OffsetSpec.forTimestamp(6_000));
            eq(1L, at.offset(), "first offset with timestamp >= 6000");
            eq(9_000L, at.timestamp(), "its timestamp");
            eq(-1L, offset(admin, tp, OffsetSpec.forTimestamp(10_000)).offset(), "offset after every timestamp");
        }
    }

    static ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(T, TimeUnit.SECONDS);
    }

    private static void deleteRecords(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("delete-records");
            ctx.createTopic(admin, topic, 1);
            TopicPartition tp = new TopicPartition(topic, 0);
            try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
                for (int i = 0; i < 10; i++) {
                    p.send(new ProducerRecord<>(topic, 0, null, "r" + i));
                }
                p.flush();
            }
            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp)
                    .get(T, TimeUnit.SECONDS).lowWatermark();
            eq(4L, low, "low watermark after deleting before 4");
            eq(4L, offset(admin, tp, OffsetSpec.earliest()).offset(), "earliest offset after the deletion");
            try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of())) {
                eq(4L, c.beginningOffsets(List.of(tp)).get(tp), "consumer's beginning offset");
                eq("r4", ClientChecks.readAll(c, List.of(tp), 6).get(0).value(), "first record left");
            }
            // -1 means the high watermark.
            eq(10L, admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(tp)
                    .get(T, TimeUnit.SECONDS).lowWatermark(), "low watermark after deleting everything");
            expectThrows(OffsetOutOfRangeException.class, "deleting past the high watermark",
                    () -> admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(11))).all()
                            .get(T, TimeUnit.SECONDS));
        }
    }

    /** Makes a group with committed offsets for {@code partitions} partitions of {@code topic}, no members. */
    static void commitAsGroup(Ctx ctx, String group, String topic, Map<Integer, Long> offsets) {
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of("group.id", group))) {
            Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
            offsets.forEach((p, o) -> commit.put(new TopicPartition(topic, p), new OffsetAndMetadata(o)));
            c.commitSync(commit);
        }
    }

    private static void groups(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("groups");
            ctx.createTopic(admin, topic, 2);
            String idle = ctx.name("idle-group");
            String active = ctx.name("active-group");
            commitAsGroup(ctx, idle, topic, Map.of(0, 1L));
            try (KafkaConsumer<String, String> member = ctx.stringConsumer(Map.of("group.id", active))) {
                member.subscribe(List.of(topic));
                GroupChecks.pollUntil("an assignment", 60_000, () -> member.assignment().size() == 2,
                        Map.entry(member, new ArrayList<>()));

                Map<String, GroupListing> listed = new HashMap<>();
                for (GroupListing g : admin.listGroups(ListGroupsOptions.forConsumerGroups()).all()
                        .get(T, TimeUnit.SECONDS)) {
                    listed.put(g.groupId(), g);
                }
                isTrue(listed.containsKey(idle) && listed.containsKey(active), "listGroups: " + listed.keySet());
                eq(Optional.of(GroupState.EMPTY), listed.get(idle).groupState(), "listed state of the idle group");
                eq(Optional.of(GroupState.STABLE), listed.get(active).groupState(), "listed state of the active group");
                eq(Optional.of(GroupType.CLASSIC), listed.get(active).type(), "listed type");
                eq("consumer", listed.get(active).protocol(), "listed protocol type");

                Map<String, ConsumerGroupDescription> described = admin.describeConsumerGroups(List.of(idle, active))
                        .all().get(T, TimeUnit.SECONDS);
                ConsumerGroupDescription a = described.get(active);
                eq(GroupState.STABLE, a.groupState(), "described state");
                eq(1, a.members().size(), "members");
                eq(2, a.members().iterator().next().assignment().topicPartitions().size(), "member's assignment");
                eq(GroupState.EMPTY, described.get(idle).groupState(), "idle group's state");
                eq(0, described.get(idle).members().size(), "idle group's members");

                expectThrows(GroupNotEmptyException.class, "deleting a group with a member",
                        () -> admin.deleteConsumerGroups(List.of(active)).all().get(T, TimeUnit.SECONDS));
            }
            admin.deleteConsumerGroups(List.of(idle)).all().get(T, TimeUnit.SECONDS);
            expectThrows(GroupIdNotFoundException.class, "deleting it again",
                    () -> admin.deleteConsumerGroups(List.of(idle)).all().get(T, TimeUnit.SECONDS));
            // A group that does not exist: DescribeGroups v6 (KIP-1043) answers GROUP_ID_NOT_FOUND;
            // before v6 Kafka describes it as Dead with no members. Which one the client sees
            // depends on the highest version both sides support.
            try {
                ConsumerGroupDescription gone = admin.describeConsumerGroups(List.of(idle)).all()
                        .get(T, TimeUnit.SECONDS).get(idle);
                eq(GroupState.DEAD, gone.groupState(), "state of a deleted group (DescribeGroups before v6)");
                eq(0, gone.members().size(), "members of a deleted group");
            } catch (java.util.concurrent.ExecutionException e) {
                isTrue(e.getCause() instanceof GroupIdNotFoundException, "describing a deleted group: " + e.getCause());
            }
        }
    }

    private static void groupOffsets(Ctx ctx) throws Exception {
        try (Admin admin = ctx.admin()) {
            String topic = ctx.name("group-offsets");
            ctx.createTopic(admin, topic, 3);
            try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of())) {
                for (int i = 0; i < 30; i++) {
                    p.send(new ProducerRecord<>(topic, i % 3, null, "g" + i));
                }
                p.flush();
            }
            String group = ctx.name("offsets-group");
            commitAsGroup(ctx, group, topic, Map.of(0, 3L, 1, 5L));
            TopicPartition p0 = new TopicPartition(topic, 0);
            TopicPartition p1 = new TopicPartition(topic, 1);
            TopicPartition p2 = new TopicPartition(topic, 2);
            Map<TopicPartition, OffsetAndMetadata> listed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            eq(Map.of(p0, 3L, p1, 5L), offsets(listed), "listed offsets");

            admin.alterConsumerGroupOffsets(group, Map.of(p1, new OffsetAndMetadata(7, "moved"),
                    p2, new OffsetAndMetadata(9))).all().get(T, TimeUnit.SECONDS);
            listed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            eq(Map.of(p0, 3L, p1, 7L, p2, 9L), offsets(listed), "offsets after alter");
            eq("moved", listed.get(p1).metadata(), "metadata after alter");

            admin.deleteConsumerGroupOffsets(group, Set.of(p0)).all().get(T, TimeUnit.SECONDS);
            listed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            eq(Map.of(p1, 7L, p2, 9L), offsets(listed), "offsets after deleting partition 0's");

            // Altering the offsets of a group with a live member is refused (Kafka's rule).
            try (KafkaConsumer<String, String> member = ctx.stringConsumer(Map.of("group.id", group))) {
                member.subscribe(List.of(topic));
                GroupChecks.pollUntil("an assignment", 60_000, () -> member.assignment().size() == 3,
                        Map.entry(member, new ArrayList<>()));
                expectThrows(UnknownMemberIdException.class, "altering an active group's offsets",
                        () -> admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all()
                                .get(T, TimeUnit.SECONDS));
            }
        }
    }

    static Map<TopicPartition, Long> offsets(Map<TopicPartition, OffsetAndMetadata> m) {
        Map<TopicPartition, Long> out = new HashMap<>();
        m.forEach((tp, o) -> {
            if (o != null) {
                out.put(tp, o.offset());
            }
        });
        return out;
    }
}

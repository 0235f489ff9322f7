package potok.compat;

import static potok.compat.Checks.eq;
import static potok.compat.Checks.expectThrows;
import static potok.compat.Checks.fail;
import static potok.compat.Checks.isTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.UnsupportedVersionException;

/** Consumer groups: the classic protocol, KIP-848's consumer protocol, static members, cooperative rebalancing. */
final class GroupChecks {
    private GroupChecks() {
    }

    /**
     * What the Java consumer reports when group.protocol=consumer meets a broker without
     * ConsumerGroupHeartbeat (KIP-848): Potok does not implement that protocol yet.
     */
    static final String CONSUMER_PROTOCOL_UNSUPPORTED = "The cluster does not support the new CONSUMER group protocol. "
            + "Set group.protocol=classic on the consumer configs to revert to the CLASSIC protocol "
            + "until the cluster is upgraded.";

    static void run(Ctx ctx, Checks checks) {
        checks.check("groups.classic.two_members_split_partitions", () -> twoMembers(ctx));
        checks.check("groups.classic.resume_from_committed", () -> resume(ctx));
        checks.check("groups.consumer_protocol_kip848", () -> consumerProtocol(ctx));
        checks.check("groups.static_membership.rejoin_without_rebalance", () -> staticRejoin(ctx));
        checks.check("groups.static_membership.duplicate_instance_fenced", () -> staticFencing(ctx));
        checks.check("groups.cooperative_sticky.incremental_rebalance", () -> cooperative(ctx));
    }

    static void produce(Ctx ctx, String topic, int partitions, int perPartition) throws Exception {
        try (KafkaProducer<String, String> p = ctx.stringProducer(Map.of("linger.ms", "5"))) {
            for (int part = 0; part < partitions; part++) {
                for (int i = 0; i < perPartition; i++) {
                    p.send(new ProducerRecord<>(topic, part, "k" + i, part + ":" + i));
                }
            }
            p.flush();
        }
    }

    /** Polls every consumer in turn (one thread, short polls) until {@code done} holds. */
    @SafeVarargs
    static void pollUntil(String what, long timeoutMs, BooleanSupplier done,
            Map.Entry<KafkaConsumer<String, String>, List<ConsumerRecord<String, String>>>... consumers) {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!done.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline) {
                throw fail("timed out after " + timeoutMs + " ms waiting for " + what);
            }
            for (var c : consumers) {
                c.getKey().poll(Duration.ofMillis(100)).forEach(c.getValue()::add);
            }
        }
    }

    @SafeVarargs
    static int distinct(List<ConsumerRecord<String, String>>... lists) {
        Set<String> values = new HashSet<>();
        for (List<ConsumerRecord<String, String>> l : lists) {
            l.forEach(r -> values.add(r.value()));
        }
        return values.size();
    }

    static ConsumerGroupDescription describe(Admin admin, String group) throws Exception {
        return admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
    }

    /**
     * Two members of one classic group split four partitions (the default assignors, range first),
     * read every record once between them, and commit; the group is Stable with two members.
     */
    private static void twoMembers(Ctx ctx) throws Exception {
        String topic = ctx.name("classic");
        String group = ctx.name("classic-group");
        ctx.createTopic(topic, 4);
        produce(ctx, topic, 4, 25);
        Map<String, String> conf = Map.of("group.id", group, "enable.auto.commit", "false");
        try (Admin admin = ctx.admin();
                KafkaConsumer<String, String> a = ctx.stringConsumer(conf);
                KafkaConsumer<String, String> b = ctx.stringConsumer(conf)) {
            List<ConsumerRecord<String, String>> ra = new ArrayList<>();
            List<ConsumerRecord<String, String>> rb = new ArrayList<>();
            // Nothing is committed yet, so after every (eager) rebalance a member reads its
            // partitions from the start again: count only what it read since its last assignment.
            a.subscribe(List.of(topic), new ClearOnAssign(ra));
            b.subscribe(List.of(topic), new ClearOnAssign(rb));
            pollUntil("each member assigned 2 partitions and reading their 50 records", 60_000,
                    () -> a.assignment().size() == 2 && b.assignment().size() == 2 && distinct(ra) == 50
                            && distinct(rb) == 50,
                    Map.entry(a, ra), Map.entry(b, rb));
            Set<TopicPartition> union = new HashSet<>(a.assignment());
            union.addAll(b.assignment());
            eq(4, union.size(), "partitions covered by the two members");
            eq(100, distinct(ra, rb), "distinct records read");
            eq(100, ra.size() + rb.size(), "records read since the last rebalance");
            isTrue(ownsAll(a, ra) && ownsAll(b, rb), "a member read a partition it does not own");
            // Each new record goes to exactly the member owning its partition.
            ra.clear();
            rb.clear();
            produce(ctx, topic, 4, 10);
            pollUntil("the 40 new records", 60_000, () -> ra.size() + rb.size() >= 40, Map.entry(a, ra),
                    Map.entry(b, rb));
            eq(40, ra.size() + rb.size(), "new records read");
            isTrue(ownsAll(a, ra) && ownsAll(b, rb), "a member read a new record of a partition it does not own");
            a.commitSync();
            b.commitSync();
            ConsumerGroupDescription d = describe(admin, group);
            eq(GroupState.STABLE, d.groupState(), "group state");
            eq(2, d.members().size(), "members");
            eq("range", d.partitionAssignor(), "assignor chosen by the group");
            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            for (int p = 0; p < 4; p++) {
                eq(35L, offsets.get(new TopicPartition(topic, p)).offset(), "committed offset of partition " + p);
            }
        }
    }

    /** A new member of the group starts at the committed offset, not at auto.offset.reset. */
    private static void resume(Ctx ctx) throws Exception {
        String topic = ctx.name("resume");
        String group = ctx.name("resume-group");
        ctx.createTopic(topic, 1);
        produce(ctx, topic, 1, 20);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, String> conf = Map.of("group.id", group, "enable.auto.commit", "false");
        try (KafkaConsumer<String, String> a = ctx.stringConsumer(conf)) {
            a.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            pollUntil("10 records", 60_000, () -> got.size() >= 10, Map.entry(a, got));
            a.commitSync(Map.of(tp, new OffsetAndMetadata(10, "half way")));
        }
        try (KafkaConsumer<String, String> b = ctx.stringConsumer(conf)) {
            eq("half way", b.committed(Set.of(tp)).get(tp).metadata(), "committed metadata");
            b.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            pollUntil("a record after rejoining", 60_000, () -> !got.isEmpty(), Map.entry(b, got));
            eq(10L, got.get(0).offset(), "first offset read after rejoining");
        }
    }

    /**
     * group.protocol=consumer (KIP-848). Apache Kafka 4.x serves it; Potok does not implement
     * ConsumerGroupHeartbeat yet, so it leaves the API out of ApiVersions and the Java consumer
     * must fail with its exact "not supported" error rather than hang or misbehave.
     */
    private static void consumerProtocol(Ctx ctx) throws Exception {
        String topic = ctx.name("kip848");
        String group = ctx.name("kip848-group");
        ctx.createTopic(topic, 2);
        produce(ctx, topic, 2, 5);
        try (KafkaConsumer<String, String> c = ctx.stringConsumer(Map.of("group.id", group, "group.protocol",
                "consumer"))) {
            c.subscribe(List.of(topic));
            if (ctx.kafka) {
                List<ConsumerRecord<String, String>> got = new ArrayList<>();
                pollUntil("10 records with the consumer protocol", 60_000, () -> got.size() >= 10, Map.entry(c, got));
                eq(2, c.assignment().size(), "partitions assigned by the consumer protocol");
            } else {
                UnsupportedVersionException e = expectThrows(UnsupportedVersionException.class,
                        "poll with group.protocol=consumer", () -> {
                            long deadline = System.currentTimeMillis() + 30_000;
                            while (System.currentTimeMillis() < deadline) {
                                c.poll(Duration.ofMillis(200));
                            }
                        });
                eq(CONSUMER_PROTOCOL_UNSUPPORTED, e.getMessage(), "error message");
            }
        }
    }

    /**
     * KIP-345: a static member that restarts with the same group.instance.id gets its old
     * assignment back without a rebalance (same generation, new member id), and AdminClient
     * removeMembersFromConsumerGroup removes it by instance id.
     */
    private static void staticRejoin(Ctx ctx) throws Exception {
        String topic = ctx.name("static");
        String group = ctx.name("static-group");
        ctx.createTopic(topic, 2);
        Map<String, String> conf = Map.of("group.id", group, "group.instance.id", "instance-1",
                "session.timeout.ms", "30000", "enable.auto.commit", "false");
        int generation;
        String memberId;
        Set<TopicPartition> assigned;
        try (Admin admin = ctx.admin()) {
            try (KafkaConsumer<String, String> c = ctx.stringConsumer(conf)) {
                c.subscribe(List.of(topic));
                pollUntil("the static member's assignment", 60_000, () -> c.assignment().size() == 2,
                        Map.entry(c, new ArrayList<>()));
                generation = c.groupMetadata().generationId();
                memberId = c.groupMetadata().memberId();
                assigned = new TreeSet<>(GroupChecks::compare);
                assigned.addAll(c.assignment());
                MemberDescription m = describe(admin, group).members().iterator().next();
                eq("instance-1", m.groupInstanceId().orElse(null), "group.instance.id in DescribeGroups");
            }
            // A static member does not leave the group when it closes (KIP-345).
            ConsumerGroupDescription after = describe(admin, group);
            eq(1, after.members().size(), "members after the static member closed");
            try (KafkaConsumer<String, String> c = ctx.stringConsumer(conf)) {
                c.subscribe(List.of(topic));
                pollUntil("the restarted static member's assignment", 60_000, () -> c.assignment().size() == 2,
                        Map.entry(c, new ArrayList<>()));
                eq(generation, c.groupMetadata().generationId(), "generation after a static rejoin");
                isTrue(!memberId.equals(c.groupMetadata().memberId()), "a restarted static member gets a new id");
                Set<TopicPartition> again = new TreeSet<>(GroupChecks::compare);
                again.addAll(c.assignment());
                eq(assigned, again, "assignment after a static rejoin");
            }
            admin.removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions(
                    List.of(new MemberToRemove("instance-1")))).all().get(30, TimeUnit.SECONDS);
            ConsumerGroupDescription removed = describe(admin, group);
            eq(0, removed.members().size(), "members after removeMembersFromConsumerGroup");
            eq(GroupState.EMPTY, removed.groupState(), "state after removing the only member");
        }
    }

    private static int compare(TopicPartition a, TopicPartition b) {
        int t = a.topic().compareTo(b.topic());
        return t != 0 ? t : Integer.compare(a.partition(), b.partition());
    }

    /** A second consumer with the same group.instance.id takes over; the first is fenced. */
    private static void staticFencing(Ctx ctx) throws Exception {
        String topic = ctx.name("fenced");
        String group = ctx.name("fenced-group");
        ctx.createTopic(topic, 1);
        Map<String, String> conf = Map.of("group.id", group, "group.instance.id", "twin",
                "session.timeout.ms", "30000", "heartbeat.interval.ms", "500", "enable.auto.commit", "false");
        try (KafkaConsumer<String, String> first = ctx.stringConsumer(conf)) {
            first.subscribe(List.of(topic));
            pollUntil("the first twin's assignment", 60_000, () -> first.assignment().size() == 1,
                    Map.entry(first, new ArrayList<>()));
            try (KafkaConsumer<String, String> second = ctx.stringConsumer(conf)) {
                second.subscribe(List.of(topic));
                pollUntil("the second twin's assignment", 60_000, () -> second.assignment().size() == 1,
                        Map.entry(second, new ArrayList<>()));
                expectThrows(FencedInstanceIdException.class, "the replaced twin's next polls", () -> {
                    long deadline = System.currentTimeMillis() + 30_000;
                    while (System.currentTimeMillis() < deadline) {
                        first.poll(Duration.ofMillis(200));
                    }
                });
            }
        }
    }

    static boolean ownsAll(KafkaConsumer<String, String> c, List<ConsumerRecord<String, String>> records) {
        return records.stream().allMatch(r -> c.assignment().contains(new TopicPartition(r.topic(), r.partition())));
    }

    /** Forgets what a member read before each new assignment. */
    static final class ClearOnAssign implements ConsumerRebalanceListener {
        private final List<ConsumerRecord<String, String>> records;

        ClearOnAssign(List<ConsumerRecord<String, String>> records) {
            this.records = records;
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            records.clear();
        }
    }

    /** Records what a rebalance listener was told. */
    static final class Recorder implements ConsumerRebalanceListener {
        final List<String> events = new ArrayList<>();
        final Set<TopicPartition> revoked = new HashSet<>();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                events.add("revoked " + partitions);
                revoked.addAll(partitions);
            }
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            events.add("assigned " + partitions);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            events.add("lost " + partitions);
        }
    }

    /**
     * KIP-429: with the cooperative-sticky assignor a joining member takes over half the
     * partitions while the first member keeps the rest throughout (it revokes only what moves),
     * and when the second member leaves the first gets them back without revoking anything.
     */
    private static void cooperative(Ctx ctx) throws Exception {
        String topic = ctx.name("cooperative");
        String group = ctx.name("cooperative-group");
        ctx.createTopic(topic, 4);
        Map<String, String> conf = Map.of("group.id", group, "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "enable.auto.commit", "false");
        Recorder ra = new Recorder();
        Recorder rb = new Recorder();
        try (Admin admin = ctx.admin(); KafkaConsumer<String, String> a = ctx.stringConsumer(conf)) {
            a.subscribe(List.of(topic), ra);
            pollUntil("the first member owning all 4 partitions", 60_000, () -> a.assignment().size() == 4,
                    Map.entry(a, new ArrayList<>()));
            Set<TopicPartition> kept;
            try (KafkaConsumer<String, String> b = ctx.stringConsumer(conf)) {
                b.subscribe(List.of(topic), rb);
                pollUntil("2 partitions each", 60_000, () -> a.assignment().size() == 2 && b.assignment().size() == 2,
                        Map.entry(a, new ArrayList<>()), Map.entry(b, new ArrayList<>()));
                eq(new HashSet<>(b.assignment()), ra.revoked, "partitions the first member revoked: " + ra.events);
                kept = new HashSet<>(a.assignment());
                isTrue(ra.events.stream().noneMatch(e -> e.startsWith("lost")), "first member lost partitions: "
                        + ra.events);
                ConsumerGroupDescription d = describe(admin, group);
                eq("cooperative-sticky", d.partitionAssignor(), "assignor chosen by the group");
                eq(2, d.members().size(), "members");
            }
            ra.revoked.clear();
            pollUntil("the first member owning all 4 again", 60_000, () -> a.assignment().size() == 4,
                    Map.entry(a, new ArrayList<>()));
            eq(Set.of(), ra.revoked, "partitions revoked when the second member left: " + ra.events);
            isTrue(a.assignment().containsAll(kept), "the first member kept its partitions");
        }
    }
}

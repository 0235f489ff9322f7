package potok.compat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka's Java transactional producer across a SIGKILL of its transaction coordinator's broker
 * (issue 21, acceptance 2, under {@code transaction.version} 2), the Java side of
 * {@code crates/potok/tests/cluster_transactions_java.rs}.
 *
 * <pre>
 * java -cp CLASSES:KAFKA_CLASSPATH potok.compat.TxnFailover BOOTSTRAP TOPIC PARTITIONS DIR TXN_ID PER_PARTITION
 * </pre>
 *
 * It first asks Admin.describeFeatures for the finalized {@code transaction.version}. Then one
 * producer (Java defaults, {@code transactional.id} TXN_ID) runs transactions back to back, each
 * writing PER_PARTITION records to every partition; every fourth one is aborted (after a flush,
 * so its records reach the partitions), the others committed. Values are
 * {@code TAG-PARTITION-I}, the tag {@code c<n>} for a planned commit and {@code a<n>} for a
 * planned abort. Errors follow the Java client's rules: fatal ones (fenced, out of order
 * sequence, authorization, unsupported version, or an abort that fails) close the producer and
 * a new one with the same id goes on; any other KafkaException aborts the transaction.
 *
 * Handshake with the caller, through files in DIR, each in the middle of a transaction (its
 * records written to every partition and flushed, the transaction not ended): after
 * {@link #BEFORE} commits it creates {@code ready} and waits while the caller SIGKILLs a broker
 * and creates {@code killed}; after {@link #AFTER} more commits it creates {@code rejoin} and
 * waits while the caller restarts the broker and creates {@code restarted}; then it commits
 * {@link #REJOINED} more and stops.
 *
 * It writes DIR/outcomes, one line each: {@code feature transaction.version LEVEL},
 * {@code committed TAG} (commitTransaction returned), {@code aborted TAG} (abortTransaction
 * returned), {@code unknown TAG} (the producer was closed in the transaction: it may have
 * committed or not), {@code epochs PID E0 E1 ENDED CLEAN PID1} (the last producer instance: its
 * producer id and epoch as DescribeTransactions answered right after initTransactions, the epoch
 * after its last transaction, how many transactions it ended, whether it saw no error, and its
 * producer id then), {@code killed-in TAG} and {@code restarted-in TAG} (the transaction open at
 * the kill and at the restart), {@code error TAG before-kill|after-kill} (the transaction
 * failed, before or after the caller killed the broker) and {@code instances N}. Prints
 * {@code OK TxnFailover} and exits 0, or {@code FAILED reason} and exits 1.
 */
public final class TxnFailover {
    private static final int BEFORE = 5;
    private static final int AFTER = 5;
    private static final int REJOINED = 5;
    private static final Duration RUN_TIMEOUT = Duration.ofSeconds(150);
    private static final Duration SIGNAL_TIMEOUT = Duration.ofSeconds(60);

    private TxnFailover() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: TxnFailover BOOTSTRAP TOPIC PARTITIONS DIR TXN_ID PER_PARTITION");
            System.exit(2);
        }
        long started = System.nanoTime();
        try {
            new TxnFailover.Run(args[0], args[1], Integer.parseInt(args[2]), Path.of(args[3]), args[4],
                    Integer.parseInt(args[5])).run();
        } catch (Throwable e) {
            e.printStackTrace();
            System.out.println("FAILED " + e);
            System.out.flush();
            System.exit(1);
        }
        System.out.printf("OK TxnFailover in %.1fs%n", (System.nanoTime() - started) / 1e9);
        System.out.flush();
        // Client threads must not keep the JVM up.
        System.exit(0);
    }

    /** One run: the producer, its phase in the handshake and what it saw. */
    private static final class Run {
        private final String bootstrap;
        private final String topic;
        private final int partitions;
        private final Path dir;
        private final String id;
        private final int perPartition;
        private final List<String> outcomes = new ArrayList<>();
        private final long started = System.nanoTime();
        private final long deadline = started + RUN_TIMEOUT.toNanos();
        private Admin admin;
        private KafkaProducer<String, String> producer;
        private int instances;
        /** The producer id and epoch of the current instance right after initTransactions. */
        private long pid0;
        private int epoch0;
        /** Transactions the current instance ended (commit or abort returned). */
        private int ended;
        /** Whether the caller killed the broker (a transaction failing before is a broker bug). */
        private boolean killed;
        /** Whether the current transaction's signal was answered. */
        private boolean signalled;
        /** Whether the current instance saw no error. */
        private boolean clean;

        Run(String bootstrap, String topic, int partitions, Path dir, String id, int perPartition) {
            this.bootstrap = bootstrap;
            this.topic = topic;
            this.partitions = partitions;
            this.dir = dir;
            this.id = id;
            this.perPartition = perPartition;
        }

        void run() throws Exception {
            Properties ac = new Properties();
            ac.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            admin = Admin.create(ac);
            try {
                Map<String, FinalizedVersionRange> features = admin.describeFeatures().featureMetadata()
                        .get(60, TimeUnit.SECONDS).finalizedFeatures();
                FinalizedVersionRange tv = features.get("transaction.version");
                outcomes.add("feature transaction.version " + (tv == null ? 0 : tv.maxVersionLevel()));
                say("finalized features " + features);
                runTransactions();
            } finally {
                if (producer != null) {
                    producer.close(Duration.ofSeconds(5));
                }
                admin.close(Duration.ofSeconds(5));
                write();
            }
        }

        private void write() throws Exception {
            Path tmp = dir.resolve("outcomes.tmp");
            Files.write(tmp, outcomes);
            Files.move(tmp, dir.resolve("outcomes"));
        }

        private void check(boolean ok, String message) {
            if (!ok) {
                throw new IllegalStateException(message);
            }
        }

        private void runTransactions() throws Exception {
            newProducer();
            int committed = 0;
            int committedAfterKill = 0;
            int committedAfterRestart = 0;
            boolean restarted = false;
            for (int n = 0; committedAfterRestart < REJOINED; n++) {
                check(System.nanoTime() < deadline, "the run took over " + RUN_TIMEOUT + ": " + outcomes);
                boolean commit = n % 4 != 3;
                String tag = (commit ? "c" : "a") + n;
                // The kill and the restart happen in the middle of a transaction: its records
                // are written to every partition (flushed) and it is not ended yet.
                String[] signal = null;
                if (!killed && committed >= BEFORE) {
                    signal = new String[] {"ready", "killed"};
                } else if (killed && !restarted && committedAfterKill >= AFTER) {
                    signal = new String[] {"rejoin", "restarted"};
                }
                signalled = false;
                boolean done = transaction(tag, commit, signal);
                if (signalled && signal[1].equals("killed")) {
                    killed = true;
                    outcomes.add("killed-in " + tag);
                } else if (signalled) {
                    restarted = true;
                    outcomes.add("restarted-in " + tag);
                }
                if (done && commit) {
                    committed++;
                    if (killed) {
                        committedAfterKill++;
                    }
                    if (restarted) {
                        committedAfterRestart++;
                    }
                }
            }
            TransactionDescription last = describe();
            outcomes.add("epochs " + pid0 + " " + epoch0 + " " + last.producerEpoch() + " " + ended + " " + clean
                    + " " + last.producerId());
            outcomes.add("instances " + instances);
        }

        /**
         * Runs transaction {@code tag}; true when it ended as planned (commitTransaction or
         * abortTransaction returned).
         */
        private boolean transaction(String tag, boolean commit, String[] signal) throws Exception {
            try {
                producer.beginTransaction();
                for (int p = 0; p < partitions; p++) {
                    for (int i = 0; i < perPartition; i++) {
                        producer.send(new ProducerRecord<>(topic, p, null, tag + "-" + p + "-" + i));
                    }
                }
                if (signal != null) {
                    producer.flush();
                    say(tag + " written, not ended: creating " + signal[0]);
                    Files.writeString(dir.resolve(signal[0]), "1\n");
                    waitFor(signal[1]);
                    signalled = true;
                    killed |= signal[1].equals("killed");
                    say(signal[1] + "; ending " + tag);
                }
                if (commit) {
                    producer.commitTransaction();
                    outcomes.add("committed " + tag);
                    say(tag + " committed");
                } else {
                    producer.flush();
                    producer.abortTransaction();
                    outcomes.add("aborted " + tag);
                    say(tag + " aborted");
                }
                ended++;
                return true;
            } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException
                    | UnsupportedVersionException e) {
                say(tag + ": fatal " + e + "; a new producer");
                outcomes.add("error " + tag + " " + (killed ? "after-kill" : "before-kill"));
                outcomes.add("unknown " + tag);
                newProducer();
                return false;
            } catch (KafkaException | IllegalStateException e) {
                outcomes.add("error " + tag + " " + (killed ? "after-kill" : "before-kill"));
                say(tag + ": " + e + (e.getCause() == null ? "" : " (cause: " + e.getCause() + ")") + "; aborting");
                clean = false;
                try {
                    producer.abortTransaction();
                    outcomes.add("aborted " + tag);
                    ended++;
                } catch (KafkaException | IllegalStateException abort) {
                    say(tag + ": the abort failed: " + abort + "; a new producer");
                    outcomes.add("unknown " + tag);
                    newProducer();
                }
                return false;
            }
        }

        private void waitFor(String name) throws InterruptedException {
            long until = System.nanoTime() + SIGNAL_TIMEOUT.toNanos();
            while (!Files.exists(dir.resolve(name))) {
                check(System.nanoTime() < until, "the caller did not create " + name);
                Thread.sleep(10);
            }
        }

        private void say(String what) {
            System.out.printf("-- java %.2fs: %s%n", (System.nanoTime() - started) / 1e9, what);
        }

        /** Closes the current producer, if any, and starts one with the same id. */
        private void newProducer() throws Exception {
            if (producer != null) {
                producer.close(Duration.ofSeconds(5));
                producer = null;
            }
            while (true) {
                check(System.nanoTime() < deadline, "no producer could initialise: " + outcomes);
                Properties pc = new Properties();
                pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
                pc.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
                pc.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
                pc.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
                KafkaProducer<String, String> p = new KafkaProducer<>(pc);
                try {
                    p.initTransactions();
                } catch (KafkaException e) {
                    say("initTransactions: " + e + "; again");
                    p.close(Duration.ofSeconds(5));
                    continue;
                }
                producer = p;
                instances++;
                break;
            }
            TransactionDescription d = describe();
            pid0 = d.producerId();
            epoch0 = d.producerEpoch();
            ended = 0;
            clean = true;
            say("producer " + instances + " initialised: " + d);
        }

        /** DescribeTransactions of the id, retried while its coordinator moves or loads. */
        private TransactionDescription describe() throws Exception {
            while (true) {
                try {
                    return admin.describeTransactions(List.of(id)).description(id).get(30, TimeUnit.SECONDS);
                } catch (Exception e) {
                    check(System.nanoTime() < deadline, "DescribeTransactions never answered: " + e);
                    say("describeTransactions: " + e + "; again");
                    Thread.sleep(200);
                }
            }
        }
    }
}
